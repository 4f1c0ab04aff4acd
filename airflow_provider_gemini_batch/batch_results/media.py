"""Media in results: every ``inlineData`` part of a results line written as a file, the line pointing at it.

Image models answer with parts ``{"inlineData": {"mimeType": "image/png", "data": "<base64>"}}``
(``docs/media.md``); a results line can be megabytes. ``MediaExtractor.line`` finds each such part
in the line's bytes, decodes its base64 straight into a file in large chunks (never building the
string, nor more than one chunk of the image, as Python objects), and replaces ``"data"`` with
``"file"``, the written file's path or URI; the line also gets ``"media"``, the list of its files.
Pure: the files are written through the ``write_file`` callable it is given (the hook's folder,
which publishes them with the results file), so the decisions are tested with plain bytes.

The fast path reads the bytes around each ``"inlineData"`` key (a match cannot lie inside a JSON
string: a quote there is always escaped); a part it does not expect (an escape inside the base64, a
key order it cannot follow, a count that disagrees with the decoded line) goes the long way: the line
decoded whole, the same fields written. ``benchmarks/bench_media.py`` measures it against decoding
the same base64 in a tight loop.
"""

from __future__ import annotations

import binascii
import hashlib
import mimetypes
import re
from collections.abc import Callable, Iterator

import msgspec
from msgspec import UNSET, UnsetType

from airflow_provider_gemini_batch.batch_results.result import json_decode, json_encode

__all__ = ["MediaExtractor", "media_file_name"]

#: Writes one media file from its decoded pieces and returns the reference the results line keeps.
WriteFile = Callable[[str, Iterator[bytes]], str]

_MARK = b'"inlineData"'
# Base64 characters per decode step: a multiple of 4, large enough that the per-call cost vanishes.
_CHUNK_CHARACTERS = 4 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_STEM_CHARACTERS = 80
# mimetypes' first guesses that are not the usual extension.
_EXTENSIONS = {"image/jpeg": ".jpg", "audio/mpeg": ".mp3", "audio/wav": ".wav", "text/plain": ".txt"}


class _Blob(msgspec.Struct, gc=False):
    mime_type: str = msgspec.field(name="mimeType", default="application/octet-stream")


class _Part(msgspec.Struct, gc=False):
    inline_data: _Blob | None = msgspec.field(name="inlineData", default=None)


class _Content(msgspec.Struct, gc=False):
    parts: list[_Part] = []


class _Candidate(msgspec.Struct, gc=False):
    content: _Content | None = None


class _Response(msgspec.Struct, gc=False):
    candidates: list[_Candidate] = []


class _Line(msgspec.Struct, gc=False):
    key: str | None = None
    response: _Response | None = None
    own_media: msgspec.Raw | UnsetType = msgspec.field(name="media", default=UNSET)  # a field named like ours


_decode_line = msgspec.json.Decoder(_Line).decode


def media_file_name(key: str | None, number: int, mime_type: str) -> str:
    """The file name of a result's ``number``-th media part: ``{key}-{number}{ext}``, the extension from the MIME type.

    A key that is not a plain file name is cleaned, and a digest of it added, so that two keys
    never share a file and no name leaves the folder.
    """
    stem = key if key is not None else "result"
    clean = _UNSAFE.sub("_", stem).strip("._-")[:_STEM_CHARACTERS] or "result"
    if clean != stem:
        clean = f"{clean}_{hashlib.sha256(stem.encode()).hexdigest()[:8]}"
    return f"{clean}-{number}{extension(mime_type)}"


def extension(mime_type: str) -> str:
    """The file extension for ``mime_type`` (``.bin`` when it has none)."""
    mime_type = mime_type.split(";", 1)[0].strip().lower()
    return _EXTENSIONS.get(mime_type) or mimetypes.guess_extension(mime_type) or ".bin"


class MediaExtractor:
    """Write the ``inlineData`` parts of results lines as files; count them.

    :param write_file: called as ``write_file(file name, decoded pieces)``; returns the reference
        (path or URI) the line keeps in place of the base64.
    :param keep_inline: keep ``"data"`` (the base64) next to ``"file"``.
    """

    def __init__(self, write_file: WriteFile, *, keep_inline: bool = False) -> None:
        self.write_file = write_file
        self.keep_inline = keep_inline
        self.file_count = self.byte_count = 0

    def lines(self, lines: list[bytes]) -> list[bytes]:
        """``line`` applied to a block of results lines."""
        return [self.line(line) if _MARK in line else line for line in lines]

    def line(self, line: bytes) -> bytes:
        """Write the media of one results line; return the line with ``"file"`` references and ``"media"``.

        A line without media, or that is not a result object, is returned as it came.
        """
        if _MARK not in line:
            return line
        try:
            parsed = _decode_line(line)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return self._long_way(line)
        mime_types = [
            part.inline_data.mime_type
            for candidate in (parsed.response.candidates if parsed.response else [])
            if candidate.content is not None
            for part in candidate.content.parts
            if part.inline_data is not None
        ]
        spans = _blob_spans(line)
        if spans is None or len(spans) != len(mime_types) or parsed.own_media is not UNSET:
            return self._long_way(line)
        pieces: list[bytes] = []
        references: list[str] = []
        position = 0
        for number, ((pair_start, data_start, data_end), mime_type) in enumerate(zip(spans, mime_types, strict=True)):
            name = media_file_name(parsed.key, number, mime_type)
            reference = self._write(name, _decoded(memoryview(line)[data_start:data_end]))
            references.append(reference)
            file_field = b'"file":' + json_encode(reference)
            if self.keep_inline:
                pieces += (line[position : data_end + 1], b",", file_field)
            else:
                pieces += (line[position:pair_start], file_field)
            position = data_end + 1
        pieces.append(line[position:])
        return _with_media(b"".join(pieces), references)

    def _write(self, name: str, pieces: Iterator[bytes]) -> str:
        counted = _Counted(pieces)
        reference = self.write_file(name, iter(counted))
        self.file_count += 1
        self.byte_count += counted.size
        return reference

    def _long_way(self, line: bytes) -> bytes:
        """The same result for a line the fast path does not follow: decoded whole, written again."""
        try:
            data = json_decode(line)
        except ValueError:
            return line  # Not JSON: the results writer names the line.
        response = data.get("response") if type(data) is dict else None
        candidates = response.get("candidates") if type(response) is dict else None
        if type(candidates) is not list:
            return line
        key = data.get("key") if type(data.get("key")) is str else None
        references: list[str] = []
        for candidate in candidates:
            content = candidate.get("content") if type(candidate) is dict else None
            parts = content.get("parts") if type(content) is dict else None
            for part in parts if type(parts) is list else ():
                blob = part.get("inlineData") if type(part) is dict else None
                if type(blob) is not dict or type(blob.get("data")) is not str:
                    continue
                mime_type = blob.get("mimeType")
                mime_type = mime_type if isinstance(mime_type, str) else "application/octet-stream"
                name = media_file_name(key, len(references), mime_type)
                encoded = blob["data"] if self.keep_inline else blob.pop("data")
                blob["file"] = self._write(name, _decoded(memoryview(encoded.encode())))
                references.append(blob["file"])
        if not references:
            return line
        data["media"] = references
        return json_encode(data) + line[len(line.rstrip()) :]


class _Counted:
    """Pass pieces on and count their bytes."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self.pieces = pieces
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.size += len(piece)
            yield piece


def _decoded(encoded: memoryview) -> Iterator[bytes]:
    """Decode base64 in chunks of ``_CHUNK_CHARACTERS`` (a multiple of 4, so chunks decode alone)."""
    a2b = binascii.a2b_base64
    for start in range(0, len(encoded), _CHUNK_CHARACTERS):
        yield a2b(encoded[start : start + _CHUNK_CHARACTERS])


def _with_media(line: bytes, references: list[str]) -> bytes:
    body = line.rstrip()  # An inline result's rebuilt line ends in a newline: it stays.
    return body[:-1] + b',"media":' + json_encode(references) + b"}" + line[len(body) :]


def _blob_spans(line: bytes) -> list[tuple[int, int, int]] | None:
    """Each ``inlineData`` object's ``"data"`` pair: (pair start, base64 start, base64 end); ``None`` when unsure."""
    spans = []
    find = line.find
    at = find(_MARK)
    while at >= 0:
        position = _skip(line, at + len(_MARK))
        if line[position : position + 1] != b":":
            return None
        position = _skip(line, position + 1)
        if line[position : position + 1] != b"{":
            return None
        span = _data_pair(line, position + 1)
        if span is None:
            return None
        spans.append(span)
        at = find(_MARK, span[2])
    return spans


def _data_pair(line: bytes, position: int) -> tuple[int, int, int] | None:
    """Read a Blob object's string members from ``position``; return its ``"data"`` pair's span."""
    found = None
    while True:
        position = _skip(line, position)
        if line[position : position + 1] == b"}":
            return found
        if line[position : position + 1] != b'"':
            return None
        key_end = line.find(b'"', position + 1)
        if key_end < 0:
            return None
        name = line[position + 1 : key_end]
        colon = _skip(line, key_end + 1)
        if line[colon : colon + 1] != b":":
            return None
        value = _skip(line, colon + 1)
        if line[value : value + 1] != b'"':
            return None
        value_end = line.find(b'"', value + 1)
        if value_end < 0 or line.find(b"\\", value + 1, value_end) >= 0 or b"\\" in name:
            return None  # An escape: the long way reads it.
        if name == b"data":
            found = (position, value + 1, value_end)
        position = _skip(line, value_end + 1)
        if line[position : position + 1] == b",":
            position += 1


def _skip(line: bytes, position: int) -> int:
    while line[position : position + 1] in (b" ", b"\t", b"\r", b"\n"):
        position += 1
    return position
