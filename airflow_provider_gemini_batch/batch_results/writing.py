"""Writing a results file: each service line kept byte for byte, with ``text`` / ``embedding`` and ``usage`` spliced on.

Part of the results fast path (see ``batch_results/__init__.py``): only what is added is decoded,
into small ``msgspec.Struct``s, so the response is never built as Python objects nor serialised
again; that is what keeps writing a file about as fast as reading results (``benchmarks/bench_results.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Generic, TypeVar

import msgspec
from msgspec import UNSET, Raw, UnsetType

from airflow_provider_gemini_batch.batch_results.result import USAGE_COUNTERS, BatchResult, json_encode

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.batch_results.media import MediaExtractor
    from airflow_provider_gemini_batch.models import BatchKind


@dataclass(frozen=True)
class ResultsSummary:
    """What ``GeminiBatchHook.write_results`` wrote: where, how many results of each outcome, and the tokens.

    :param path: the results file (a local path or a URI, as given or as named in a folder).
    :param expected_count: the job's request count, or the number of expected keys; ``None`` when
        the job reports none.
    :param usage: every ``USAGE_COUNTERS`` name, summed over the results (0 when none had it).
    :param media_count: media files written (``inlineData`` parts, with a media destination).
    :param media_bytes: their decoded bytes.
    """

    path: str
    batch_name: str
    display_name: str | None
    expected_count: int | None
    succeeded_count: int
    failed_count: int
    usage: dict[str, int] = field(default_factory=dict)
    media_count: int = 0
    media_bytes: int = 0

    @property
    def result_count(self) -> int:
        """Lines written: one per result read."""
        return self.succeeded_count + self.failed_count


# The parts of a results line that write_results adds to it; a line is decoded into these and nothing else.
class _Part(msgspec.Struct, gc=False):
    text: str | None = None
    thought: bool = False


class _Content(msgspec.Struct, gc=False):
    parts: list[_Part] = []


class _Candidate(msgspec.Struct, gc=False):
    content: _Content | None = None


class _Usage(msgspec.Struct, gc=False, omit_defaults=True):
    """``usageMetadata``'s counters; encoded, it is the written line's ``usage`` (zeros left out)."""

    prompt: int = msgspec.field(name="promptTokenCount", default=0)
    cached: int = msgspec.field(name="cachedContentTokenCount", default=0)
    candidates: int = msgspec.field(name="candidatesTokenCount", default=0)
    tool_use: int = msgspec.field(name="toolUsePromptTokenCount", default=0)
    thoughts: int = msgspec.field(name="thoughtsTokenCount", default=0)
    total: int = msgspec.field(name="totalTokenCount", default=0)


class _GenerateResponse(msgspec.Struct, gc=False):
    candidates: list[_Candidate] = []
    usage: _Usage | None = msgspec.field(name="usageMetadata", default=None)


class _Embedding(msgspec.Struct, gc=False):
    values: Raw | UnsetType = UNSET


class _EmbedResponse(msgspec.Struct, gc=False):
    embedding: _Embedding | None = None
    tokens: int = msgspec.field(name="tokenCount", default=0)


R = TypeVar("R", _GenerateResponse, _EmbedResponse)


class _Line(msgspec.Struct, Generic[R], gc=False):
    """A results line the splice takes: a key and a response (a line without either does not decode).

    ``error`` and the fields named like ours are there to notice a line the splice must not take.
    """

    key: str
    response: R
    error: Raw | UnsetType = UNSET
    own_text: Raw | UnsetType = msgspec.field(name="text", default=UNSET)
    own_embedding: Raw | UnsetType = msgspec.field(name="embedding", default=UNSET)
    own_usage: Raw | UnsetType = msgspec.field(name="usage", default=UNSET)


# strict=False: int64 counters come as strings (docs/protocol.md "Wire encoding"), and become ints here.
_decode_generate_line = msgspec.json.Decoder(_Line[_GenerateResponse], strict=False).decode
_decode_embed_line = msgspec.json.Decoder(_Line[_EmbedResponse], strict=False).decode


class UnreadableLine(ValueError):
    def __init__(self, line: bytes, cause: ValueError) -> None:
        super().__init__(str(cause))
        self.line, self.cause = line, cause


class ResultsWriter:
    """Write normalised results lines to ``out`` and count them: ``{"key", "response" | "error", ..., "usage"}``.

    A generation job's lines get ``text`` (the first candidate's text parts, joined; ``null`` for an
    error or an answer without text); an embedding job's get ``embedding`` (the values; ``null``
    for an error). Both get ``usage``, the token counters that are not zero (``BatchResult.usage``).
    The service's line is kept byte for byte where it can be, with the new fields spliced in before
    its closing brace; other lines are rebuilt with the same fields.

    :param out: a binary file, written one block of lines (a downloaded chunk's worth) at a time.
    :param kind: the job's kind: ``generate`` or ``embed``.
    :param missing_keys: the expected keys not read yet, if known; each result's key is taken out.
    :param media: writes each line's ``inlineData`` parts as files first (``batch_results.media``).
    """

    def __init__(
        self,
        out: BinaryIO,
        kind: BatchKind,
        missing_keys: set[str | None] | None = None,
        *,
        media: MediaExtractor | None = None,
    ) -> None:
        self.out = out
        self.media = media
        self.embed = kind == "embed"
        self.missing_keys = missing_keys
        self.succeeded = self.failed = 0
        self._sums = [0] * len(USAGE_COUNTERS)

    @property
    def usage(self) -> dict[str, int]:
        """Every token counter, summed over the lines written."""
        return dict(zip(USAGE_COUNTERS, self._sums, strict=True))

    def write_lines(self, lines: list[bytes]) -> int:
        """Normalise and write a block of results-file lines (blank ones are skipped); return how many were written.

        :raises UnreadableLine: naming the line that is not a result object; nothing of the block is written.
        """
        before = self.succeeded + self.failed
        if self.media is not None:
            lines = self.media.lines(lines)
        if self.embed:
            block = [self._embed_line(line) for line in lines if line.strip()]
        else:
            block = self._generate_lines(lines)
        self.out.write(b"".join(block))
        return self.succeeded + self.failed - before

    def render_line(self, line: bytes) -> bytes:
        """Normalise and count one results-file line that is not blank, without writing it.

        :raises ValueError: the line is not a result object.
        """
        if self.media is not None:
            line = self.media.line(line)
        return self._embed_line(line) if self.embed else b"".join(self._generate_lines([line]))

    def write_result(self, result: BatchResult) -> None:
        """Write one result from its fields (an inline item's, or a line the splice did not take)."""
        line = self._rebuilt(result)
        self.out.write(line if self.media is None else self.media.line(line))

    def _generate_lines(self, lines: list[bytes]) -> list[bytes]:
        # The hot loop: per line, one typed decode and the pieces of the new line, no Python dicts;
        # the block is joined once. Every line the splice does not take goes to _rebuilt_line.
        decode, missing, encode = _decode_generate_line, self.missing_keys, json_encode
        block: list[bytes] = []
        add = block.extend
        # Sums of the spliced lines, added to self._sums at the end: a rebuilt line adds its own meanwhile.
        prompt = cached = candidates = tool_use = thoughts = total = 0
        spliced = 0
        for line in lines:
            try:
                parsed = decode(line)
            except ValueError:
                if line.strip():
                    block.append(self._rebuilt_line(line))
                continue
            if (
                parsed.error is not UNSET
                or parsed.own_text is not UNSET
                or parsed.own_usage is not UNSET
                or parsed.own_embedding is not UNSET
            ):
                block.append(self._rebuilt_line(line))
                continue
            response = parsed.response
            text = b"null"
            if response.candidates:
                content = response.candidates[0].content
                if content is not None:
                    parts = content.parts
                    if len(parts) == 1:
                        if parts[0].text is not None and not parts[0].thought:
                            text = encode(parts[0].text)
                    elif parts:
                        text = _joined_text(parts)
            body = line[:-1] if line[-1:] == b"}" else line.rstrip()[:-1]
            usage = response.usage
            if usage is None:
                add((body, b',"text":', text, b',"usage":{}}\n'))
            else:
                prompt += usage.prompt
                cached += usage.cached
                candidates += usage.candidates
                tool_use += usage.tool_use
                thoughts += usage.thoughts
                total += usage.total
                add((body, b',"text":', text, b',"usage":', encode(usage), b"}\n"))
            spliced += 1
            if missing is not None:
                missing.discard(parsed.key)
        for index, added in enumerate((prompt, cached, candidates, tool_use, thoughts, total)):
            self._sums[index] += added
        self.succeeded += spliced
        return block

    def _embed_line(self, line: bytes) -> bytes:
        try:
            parsed = _decode_embed_line(line)
        except ValueError:
            return self._rebuilt_line(line)
        embedding = parsed.response.embedding
        values = embedding.values if embedding is not None else UNSET
        if (
            values is UNSET
            or memoryview(values)[:1].tobytes() != b"["
            or parsed.error is not UNSET
            or parsed.own_text is not UNSET
            or parsed.own_usage is not UNSET
            or parsed.own_embedding is not UNSET
        ):
            return self._rebuilt_line(line)
        tokens = parsed.response.tokens
        usage = b'{"promptTokenCount":%d,"totalTokenCount":%d}' % (tokens, tokens) if tokens else b"{}"
        self._sums[0] += tokens
        self._sums[-1] += tokens
        self.succeeded += 1
        if self.missing_keys is not None:
            self.missing_keys.discard(parsed.key)
        return b"".join((line.rstrip()[:-1], b',"embedding":', values, b',"usage":', usage, b"}\n"))

    def _rebuilt_line(self, line: bytes) -> bytes:
        try:
            result = BatchResult.from_json(line)
        except ValueError as exc:
            raise UnreadableLine(line, exc) from exc
        return self._rebuilt(result)

    def _rebuilt(self, result: BatchResult) -> bytes:
        line = result.as_dict()
        if self.embed:
            line["embedding"] = result.embedding
        else:
            line["text"] = result.text
        usage = line["usage"] = result.usage
        for index, name in enumerate(USAGE_COUNTERS):
            self._sums[index] += usage.get(name, 0)
        if result.succeeded:
            self.succeeded += 1
        else:
            self.failed += 1
        if self.missing_keys is not None:
            self.missing_keys.discard(result.key)
        return json_encode(line) + b"\n"


def _joined_text(parts: list[_Part]) -> bytes:
    texts = [part.text for part in parts if part.text is not None and not part.thought]
    return json_encode("".join(texts)) if texts else b"null"
