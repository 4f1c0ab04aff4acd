"""Batch results, the fast path: a results file's bytes read into ``BatchResult``s, or spliced into a results file.

Pure and streaming, like ``batch_input``: chunks of a results file come in (cut anywhere, and read
again after a body that ended early), results or written lines go out; the hook does the HTTP
(``GeminiBatchHook.iter_results`` and ``write_results``). This runs once per result, millions of
times for a large job: flat loops over bytes, with ``benchmarks/bench_results.py`` as the
regression check (its docstring says where the time goes).

- ``ResultsFile.results`` decodes each whole line (msgspec, untyped) into a ``BatchResult``.
- ``ResultsWriter`` decodes only what it adds to a line, into small ``msgspec.Struct``s (key,
  the first candidate's text parts, ``usageMetadata``; for embeddings the token count and the
  values as raw JSON), and splices the additions onto the service's own bytes: the response is
  never built as Python objects nor serialised again, which makes it faster than reading results.
  A line it does not expect (an error, no key, a field named like ours, a shape the structs do
  not fit) goes the long way, through ``BatchResult``, to the same fields.

What is read is checked against the job's ``batchStats.requestCount`` or the expected keys: a results
body sent without a length can end early and look whole (``docs/protocol.md``, "Results").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Generic, TypeVar

import msgspec
from msgspec import UNSET, Raw, UnsetType

from airflow_provider_gemini_batch.exceptions import GeminiBatchError, GeminiBatchIncompleteResults
from airflow_provider_gemini_batch.models import Status

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.models import Batch, BatchKind

__all__ = ["USAGE_COUNTERS", "BatchResult", "ResultsFile", "ResultsSummary", "ResultsWriter", "expected_result_count"]

#: The token counters of ``usageMetadata`` (PROTOCOL.md, "Media"): the ``usage`` of a result and of a manifest.
USAGE_COUNTERS = (
    "promptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "toolUsePromptTokenCount",
    "thoughtsTokenCount",
    "totalTokenCount",
)
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.encode
T = TypeVar("T")


class BatchResult:
    """The outcome of one request in a batch: a response or an error, matched by ``key``.

    Build it from a results-file line (``{"key", "response" | "error", ...}``) with ``from_json``,
    from the same object already parsed with ``from_dict``, or from an inline item
    (``{"response" | "error", "metadata": {"key"}}``) with ``from_inline``. Results may come back in
    any order: always match on ``key``.

    A plain slotted class, not a pydantic model: validating millions of lines as models halves the
    rate they are read at (``benchmarks/bench_results.py``). ``from_json`` and ``from_dict`` check what
    a model would (``key`` a string or absent, ``response`` an object or absent, ``error`` a
    ``Status``) and raise ``ValueError`` otherwise; the constructor takes its arguments as given.
    Public as ``airflow_provider_gemini_batch.models.BatchResult``, the name Airflow's XCom serde
    knows it by (deserialising needs it in ``[core] allowed_deserialization_classes``).

    :param key: the request's key (``None`` for an inline job without one).
    :param response: the raw ``GenerateContentResponse`` (or embedding response), untouched.
    :param error: the request's error.
    :param extra: other top-level fields of the line (the input line's own fields, echoed back).
    :param raw: the results-file line exactly as the service wrote it (``None`` for inline results).
    """

    __module__ = "airflow_provider_gemini_batch.models"  # its public home, and its name for Airflow's serde
    __slots__ = ("error", "extra", "key", "raw", "response")
    __version__: ClassVar[int] = 1  # For Airflow's serde.

    def __init__(
        self,
        key: str | None = None,
        response: dict[str, Any] | None = None,
        error: Status | None = None,
        extra: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> None:
        self.key = key
        self.response = response
        self.error = error
        self.extra = extra or {}
        self.raw = raw

    @classmethod
    def from_json(cls, line: bytes) -> BatchResult:
        """Parse one results-file line; keep the line itself as ``raw``.

        :raises ValueError: the line is not JSON, or not a result object.
        """
        data = _decode(line)
        if type(data) is not dict:
            raise ValueError(f"a result line must be a JSON object, not {type(data).__name__}")
        return _build_result(data, line)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchResult:
        """Build a result from a parsed results-file object. ``data`` is consumed (its fields move into the result).

        :raises ValueError: ``key``, ``response`` or ``error`` has the wrong type.
        """
        return _build_result(data, None)

    @classmethod
    def from_inline(cls, item: Mapping[str, Any]) -> BatchResult:
        """Parse one item of an inline job's ``inlinedResponses``."""
        data = dict(item)
        metadata = data.pop("metadata", None) or {}
        data.setdefault("key", metadata.get("key") if isinstance(metadata, Mapping) else None)
        return cls.from_dict(data)

    def __repr__(self) -> str:
        # Key and outcome only: a response can be megabytes, and a repr must never raise.
        return f"BatchResult(key={self.key!r}, succeeded={self.succeeded})"

    def serialize(self) -> dict[str, Any]:
        """Airflow serde (XCom): the result as ``as_dict`` gives it; ``raw`` is not kept."""
        return self.as_dict()

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> BatchResult:
        """Airflow serde (XCom): the inverse of ``serialize``."""
        return BatchResult.from_dict(dict(data))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BatchResult):
            return NotImplemented
        mine = (self.key, self.response, self.error, self.extra)
        return mine == (other.key, other.response, other.error, other.extra)

    __hash__ = None  # type: ignore[assignment]  # Mutable, like the dicts it holds.

    def as_dict(self) -> dict[str, Any]:
        """The result as a results-file object: ``{"key", "response" | "error", ...extra}``."""
        data: dict[str, Any] = {"key": self.key, **self.extra}
        if self.error is not None:
            data["error"] = self.error.model_dump(mode="json", exclude_defaults=True)
        if self.response is not None:
            data["response"] = self.response
        return data

    @property
    def succeeded(self) -> bool:
        """Whether the request produced a response rather than an error."""
        return self.error is None and self.response is not None

    @property
    def text(self) -> str | None:
        """The first candidate's text parts joined (thoughts left out), or ``None``."""
        candidates = self.response.get("candidates") if self.response else None
        content = candidates[0].get("content") if candidates and type(candidates[0]) is dict else None
        parts = content.get("parts") if type(content) is dict else None
        if not parts or type(parts) is not list:
            return None
        texts = [
            part["text"]
            for part in parts
            if type(part) is dict and type(part.get("text")) is str and not part.get("thought")
        ]
        return "".join(texts) if texts else None

    @property
    def usage(self) -> dict[str, int]:
        """The token counters (``USAGE_COUNTERS``) of ``usageMetadata`` that are not zero; empty for errors.

        An embedding result has one count, ``tokenCount``: the tokens of its input, given as
        ``promptTokenCount`` and ``totalTokenCount``. The service may leave it out; then there is none.
        """
        response = self.response
        metadata = response.get("usageMetadata") if response else None
        if response and metadata is None and "tokenCount" in response:
            tokens = _count(response["tokenCount"])
            return {"promptTokenCount": tokens, "totalTokenCount": tokens} if tokens else {}
        if type(metadata) is not dict:
            return {}
        counts = {name: _count(metadata.get(name)) for name in USAGE_COUNTERS}
        return {name: count for name, count in counts.items() if count}

    @property
    def embedding(self) -> list[float] | None:
        """The embedding values of an embeddings result, or ``None``."""
        embedding = self.response.get("embedding") if self.response else None
        values = embedding.get("values") if type(embedding) is dict else None
        return [float(value) for value in values] if type(values) is list else None


def _count(value: object) -> int:
    # int32 counters arrive as numbers, int64 ones as strings (PROTOCOL.md); anything else is no count.
    if type(value) is int:
        return value
    return int(value) if type(value) is str and value.isdigit() else 0


def _build_result(data: dict[str, Any], raw: bytes | None) -> BatchResult:
    # The one hot path of reading results: plain attribute stores, no __init__ call.
    result = _new_result(BatchResult)
    result.key = key = data.pop("key", None)
    result.response = response = data.pop("response", None)
    error = data.pop("error", None)
    result.extra = data
    result.raw = raw
    if key is not None and type(key) is not str:
        raise ValueError(f"'key' must be a string, not {type(key).__name__}")
    if response is not None and type(response) is not dict:
        raise ValueError(f"'response' must be an object, not {type(response).__name__}")
    result.error = None if error is None else Status.model_validate(error)
    return result


_new_result = object.__new__


def expected_result_count(batch: Batch, expected_keys: Collection[str | None] | None = None) -> int | None:
    """Return how many results a job should have: distinct expected keys, else ``batchStats.requestCount``.

    :return: ``None`` when neither is known (the job reports no request count).
    """
    if expected_keys is not None:
        return len(set(expected_keys))
    return batch.batch_stats.request_count or None


def check_complete(batch_name: str, expected_count: int | None, read: int, missing_keys: set[Any] | None) -> int:
    """Raise when results are missing; return how many were read beyond those expected (a key read twice, say)."""
    if expected_count is None:
        return 0
    if missing_keys:
        found = expected_count - len(missing_keys)
        raise GeminiBatchIncompleteResults(batch_name, expected_count, found, sorted(map(str, missing_keys)))
    if missing_keys is None and read < expected_count:
        raise GeminiBatchIncompleteResults(batch_name, expected_count, read)
    return read - expected_count


class ResultsFile:
    """One results file read over one or more downloads, each going on where the one before stopped.

    Every download starts at byte 0 (``iter_file_bytes``); the bytes an earlier one already gave are
    skipped, so no line is read twice. A last line without a newline that does not parse is kept for
    the next download while results are still missing (the body was cut off inside it); otherwise it
    is an error. Holds one chunk and one partial line at a time.

    :param missing_keys: the expected keys not read yet, if known; each result's key is taken out.
    :param expected_count: how many results the file should hold (0 when unknown).
    """

    def __init__(self, file_name: str, expected_count: int, missing_keys: set[str | None] | None = None) -> None:
        self.file_name = file_name
        self.expected_count = expected_count
        self.missing_keys = missing_keys
        self.offset = self.line_number = self.read = 0  # bytes consumed, lines seen, results read
        self.rest: list[bytes] = []  # The line being read, in pieces: joined once, at its end.

    @property
    def short(self) -> bool:
        """Whether fewer results were read than the file should hold."""
        return self.read < self.expected_count

    def results(self, chunks: Iterator[bytes]) -> Iterator[BatchResult]:
        """Parse one download's lines into results; blank lines are skipped.

        :raises GeminiBatchError: for a line that is not a result object (the message gives its number).
        """
        decode, build, missing = _decode, _build_result, self.missing_keys
        for lines in self._blocks(chunks):
            number = self.line_number
            for line in lines:
                number += 1
                try:  # BatchResult.from_json, one call fewer
                    data = decode(line)
                    if type(data) is not dict:
                        raise ValueError(f"a result line must be a JSON object, not {type(data).__name__}")
                    result = build(data, line)
                except ValueError as exc:
                    if line.strip():
                        raise self._unreadable(number, exc) from exc
                    continue
                self.read += 1
                if missing is not None:
                    missing.discard(result.key)
                yield result
            self.line_number = number
        last = self._last_line(BatchResult.from_json)
        if last is not None:
            if missing is not None:
                missing.discard(last.key)
            yield last

    def write(self, chunks: Iterator[bytes], writer: ResultsWriter) -> None:
        """Normalise one download's lines into ``writer``.

        :raises GeminiBatchError: for a line that is not a result object (the message gives its number).
        """
        for lines in self._blocks(chunks):
            try:
                self.read += writer.write_lines(lines)
            except _UnreadableLine as bad:
                # An identical line before it would have failed first: index() finds this one.
                raise self._unreadable(self.line_number + lines.index(bad.line) + 1, bad.cause) from bad.cause
            self.line_number += len(lines)
        last = self._last_line(writer.render_line)
        if last is not None:
            writer.out.write(last)

    def _blocks(self, chunks: Iterator[bytes]) -> Iterator[list[bytes]]:
        """Yield the lines that end in each chunk; keep the line each chunk ends inside in ``rest``."""
        skip = self.offset
        rest = self.rest
        for chunk in chunks:
            if skip:
                if len(chunk) <= skip:
                    skip -= len(chunk)
                    continue
                chunk, skip = chunk[skip:], 0
            self.offset += len(chunk)
            lines = chunk.split(b"\n")
            if len(lines) == 1:
                rest.append(chunk)
                continue
            if rest:
                rest.append(lines[0])
                lines[0] = b"".join(rest)
                rest.clear()
            last = lines.pop()
            if last:
                rest.append(last)
            yield lines

    def _last_line(self, parse: Callable[[bytes], T]) -> T | None:
        """Parse a last line that had no newline; keep it for the next download if it was cut off."""
        final = b"".join(self.rest)
        self.rest = []
        if not final.strip():
            return None
        try:
            parsed = parse(final)
        except ValueError as exc:
            if not self.short:
                raise self._unreadable(self.line_number + 1, exc) from exc
            self.rest = [final]
            return None
        self.line_number += 1
        self.read += 1
        return parsed

    def _unreadable(self, line_number: int, exc: ValueError) -> GeminiBatchError:
        return GeminiBatchError(
            f"Line {line_number} of results file {self.file_name} is not a valid result object: {type(exc).__name__}."
        )


@dataclass(frozen=True)
class ResultsSummary:
    """What ``GeminiBatchHook.write_results`` wrote: where, how many results of each outcome, and the tokens.

    :param path: the results file (a local path or a URI, as given or as named in a folder).
    :param expected_count: the job's request count, or the number of expected keys; ``None`` when
        the job reports none.
    :param usage: every ``USAGE_COUNTERS`` name, summed over the results (0 when none had it).
    """

    path: str
    batch_name: str
    display_name: str | None
    expected_count: int | None
    succeeded_count: int
    failed_count: int
    usage: dict[str, int] = field(default_factory=dict)

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


# strict=False: int64 counters come as strings (PROTOCOL.md), and become ints here.
_decode_generate_line = msgspec.json.Decoder(_Line[_GenerateResponse], strict=False).decode
_decode_embed_line = msgspec.json.Decoder(_Line[_EmbedResponse], strict=False).decode


class _UnreadableLine(ValueError):
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
    """

    def __init__(self, out: BinaryIO, kind: BatchKind, missing_keys: set[str | None] | None = None) -> None:
        self.out = out
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

        :raises _UnreadableLine: naming the line that is not a result object; nothing of the block is written.
        """
        before = self.succeeded + self.failed
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
        return self._embed_line(line) if self.embed else b"".join(self._generate_lines([line]))

    def write_result(self, result: BatchResult) -> None:
        """Write one result from its fields (an inline item's, or a line the splice did not take)."""
        self.out.write(self._rebuilt(result))

    def _generate_lines(self, lines: list[bytes]) -> list[bytes]:
        # The hot loop: per line, one typed decode and the pieces of the new line, no Python dicts;
        # the block is joined once. Every line the splice does not take goes to _rebuilt_line.
        decode, missing, encode = _decode_generate_line, self.missing_keys, _encode
        block: list[bytes] = []
        add = block.extend
        prompt, cached, candidates, tool_use, thoughts, total = self._sums
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
        self._sums = [prompt, cached, candidates, tool_use, thoughts, total]
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
            raise _UnreadableLine(line, exc) from exc
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
        return _encode(line) + b"\n"


def _joined_text(parts: list[_Part]) -> bytes:
    texts = [part.text for part in parts if part.text is not None and not part.thought]
    return _encode("".join(texts)) if texts else b"null"
