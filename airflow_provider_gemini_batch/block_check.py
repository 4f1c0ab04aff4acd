"""Vouch for a whole block of JSONL lines at once, or decline: the splitter's fast path.

``batch_input.ItemChecker`` checks one parsed line at a time, which costs microseconds of Python per
line: most of the time of splitting a large input. ``BlockCheck`` looks at a block of whole lines
(megabytes) with C-level work only: ``msgspec`` decodes every line into a typed shape that holds
exactly what ``ItemChecker`` requires (an object with a string ``key`` and a ``request`` of the job's
kind: ``contents``, a non-empty list of objects with a ``parts`` list, or ``content``, an object with
a ``parts`` list), and how each line begins and ends proves that it holds exactly one value.

It never accepts a line that ``ItemChecker`` would refuse: when it cannot vouch for every line of a
block (a bad line, a blank one, leading whitespace, a request of the other kind, a key that is only
whitespace), it returns ``None`` and the caller checks that block line by line, which names the
problems. Why one value per line follows: every line must begin with ``{`` and end with ``}`` (before
its newline, or a carriage return and newline). JSON strings hold no raw newline, so a newline lies between tokens; a
value cannot continue across such a line break, because after a closing ``}`` a container needs a
``,`` or a closing bracket, never ``{``. So every value lies within one line, and as many values as
lines means one value per line.
"""

from __future__ import annotations

import gc
from itertools import repeat
from operator import attrgetter
from typing import Annotated

import msgspec

from airflow_provider_gemini_batch.models import BatchKind

__all__ = ["BlockCheck"]


class _Content(msgspec.Struct, gc=False):
    parts: list[msgspec.Raw]


class _GenerateRequest(msgspec.Struct, gc=False):
    contents: Annotated[list[_Content], msgspec.Meta(min_length=1)]


class _EmbedRequest(msgspec.Struct, gc=False):
    content: _Content


class _GenerateLine(msgspec.Struct, gc=False):
    key: str
    request: _GenerateRequest


class _EmbedLine(msgspec.Struct, gc=False):
    key: str
    request: _EmbedRequest


_key_of = attrgetter("key")
_LINE_ENDS = (b"}\n", b"}\r\n")


class BlockCheck:
    """Check blocks of whole lines for a job of ``kind`` (``None``: not known yet; generation lines
    pass here, embedding lines go line by line, where either kind passes)."""

    def __init__(self, kind: BatchKind | None) -> None:
        line_type = _EmbedLine if kind == "embed" else _GenerateLine
        self._decode_lines = msgspec.json.Decoder(line_type).decode_lines

    def keys(self, lines: list[bytes], block: bytes) -> list[str] | None:
        """The keys of ``lines`` when every one passes, in order; else ``None``.

        :param lines: lines as read, each ending with a newline.
        :param block: the same lines joined.
        """
        if (
            not lines
            or not all(map(bytes.startswith, lines, repeat(b"{")))
            or not all(map(bytes.endswith, lines, repeat(_LINE_ENDS)))
            or not _is_utf8(block)
        ):
            return None
        # The decoded lines hold thousands of lists, freed when this returns. The garbage collector,
        # counting them as new objects, would otherwise keep sweeping the whole heap (Airflow's too),
        # which took most of the time; nothing here makes a reference cycle.
        collecting = gc.isenabled()
        gc.disable()
        try:
            items = self._decode_lines(block)
            keys = list(map(_key_of, items)) if len(items) == len(lines) else None
            del items
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        finally:
            if collecting:
                gc.enable()
        if keys is None or not all(map(str.strip, keys)):
            return None
        return keys


def _is_utf8(block: bytes) -> bool:
    """Whether ``block`` is valid UTF-8 (``msgspec`` does not look inside values it skips)."""
    if block.isascii():
        return True
    try:
        block.decode()
    except UnicodeDecodeError:
        return False
    return True
