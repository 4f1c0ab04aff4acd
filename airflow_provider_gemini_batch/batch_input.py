"""Validate and build batch input JSONL before anything is uploaded or paid for.

Every line must be a JSON object with a non-empty, unique string ``key`` and a ``request`` object
(``docs/protocol.md``, "Input JSONL"), and the request must be one the job's kind can answer: a
``generateContent`` request needs a non-empty ``contents`` list of objects with ``parts``; an
``embedContent`` request needs a ``content`` object with ``parts``. The service fails a request that
lacks them one by one, in the results, after the job has queued and billed the rest; raw records
passed where requests are expected (``{"key": "1", "text": "hello"}``) are the usual cause.

Problems are collected over the whole input and reported together with their line numbers, so one run
tells the user everything to fix. Lines are read and checked one at a time: memory holds the keys
seen (to find duplicates), never the input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import pydantic_core

from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError, truncate
from airflow_provider_gemini_batch.models import BatchKind

__all__ = [
    "FILE_LIMIT_BYTES",
    "INLINE_LIMIT_BYTES",
    "MAX_REPORTED_PROBLEMS",
    "InputSummary",
    "ItemChecker",
    "PreparedInput",
    "inline_body_bytes",
    "inline_item",
    "parse_records",
    "records_to_jsonl",
    "validate_jsonl",
]

# The service rejects create bodies over 20,971,520 bytes ("Request payload size exceeds the limit",
# docs/protocol.md "Limits"); keep a margin for the envelope (display name, extra batch fields).
INLINE_LIMIT_BYTES = 20_971_520 - 64 * 1024
#: The Files API takes input files of at most 2 GB (docs/protocol.md "Limits"): the largest job.
FILE_LIMIT_BYTES = 2 * 1024**3

MAX_REPORTED_PROBLEMS = 20

_FIELDS_SHOWN = 5
_NAME_CHARS = 40

_SHAPES: dict[BatchKind | None, str] = {
    "generate": '{"key": "<unique non-empty string>", "request": {"contents": [{"parts": [{"text": "..."}]}]}}',
    "embed": '{"key": "<unique non-empty string>", "request": {"content": {"parts": [{"text": "..."}]}}}',
    None: '{"key": "<unique non-empty string>", "request": {...}}, the request holding "contents": '
    '[{"parts": [...]}] (generation) or "content": {"parts": [...]} (embedding)',
}


@dataclass
class _Problems:
    """Problems found so far, keeping the first few for the message and counting the rest."""

    source: str
    shape: str
    items: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, label: str, number: int, what: str) -> None:
        self.count += 1
        if len(self.items) < MAX_REPORTED_PROBLEMS:
            self.items.append(f"{label} {number}: {what}")

    def raise_if_any(self, total: int) -> None:
        if total == 0 and not self.count:
            raise GeminiBatchInputError(f"{self.source} has no requests: a batch needs at least one.")
        if not self.count:
            return
        more = f"; and {self.count - len(self.items)} more" if self.count > len(self.items) else ""
        raise GeminiBatchInputError(
            f"{self.source} has {self.count} problem(s); nothing was uploaded or submitted. "
            f"Fix: {'; '.join(self.items)}{more}. {self.shape}."
        )


@dataclass(frozen=True)
class InputSummary:
    """What a validated input holds."""

    request_count: int
    byte_count: int


class ItemChecker:
    """Checks items one by one, remembering keys to find duplicates.

    :param kind: the job's kind, whose request shape every item must have; ``None`` when not known
        yet (a file uploaded for a later submit): either shape passes.
    :param track_keys: find duplicate keys by remembering each key with its line; ``False`` leaves
        that to the caller (the splitter keeps 8 bytes a key instead: ``sharding.KeyLedger``).
    """

    def __init__(
        self, source: str, item_label: str, kind: BatchKind | None, shape_note: str = "", *, track_keys: bool = True
    ) -> None:
        self.problems = _Problems(source, f"Each {item_label} must be {_SHAPES[kind]}{shape_note}")
        self.item_label = item_label
        self.kind = kind
        self.first_seen: dict[str, int] = {}
        self.track_keys = track_keys

    def check(self, item: Any, number: int) -> bool:
        label, add = self.item_label, self.problems.add
        if not _is_object(item):
            add(label, number, f"is a JSON {type(item).__name__}, not an object")
            return False
        ok = True
        key = item.get("key")
        if type(key) is not str or not key.strip():
            add(
                label,
                number,
                f"'key' must be a string, got {truncate(repr(key), 60)}" if key else "missing or empty 'key'",
            )
            ok = False
        elif not self.track_keys:
            pass
        elif key in self.first_seen:
            add(label, number, f"duplicate key {key!r} (first on {label} {self.first_seen[key]})")
            ok = False
        else:
            self.first_seen[key] = number
        request = item.get("request")
        if request is None:
            add(label, number, f"no 'request' object (the {label} has {_names(item)})")
            return False
        problem = request_problem(request, self.kind)
        if problem:
            add(label, number, problem)
            return False
        return ok


def request_problem(request: Any, kind: BatchKind | None) -> str | None:
    """Say what stops ``request`` from being a request of ``kind`` (either kind when ``None``), or ``None``.

    Checks what the service needs before it can answer, not every field: the rest is passed through.
    """
    if not _is_object(request):
        return f"'request' must be an object, got {type(request).__name__}"
    if kind == "generate" or (kind is None and "contents" in request):
        return _generate_problem(request)
    if kind == "embed" or "content" in request:
        return _embed_problem(request)
    return (
        f"'request' has neither 'contents' (a generation request) nor 'content' (an embedding request){_has(request)}"
    )


def _generate_problem(request: Mapping[str, Any]) -> str | None:
    contents = request.get("contents")
    if contents is None:
        if "content" in request:
            return (
                "'request' has no 'contents' (it has 'content': an embedding request; "
                "submit it with GeminiSubmitEmbeddingsBatchOperator)"
            )
        return f"'request' has no 'contents'{_has(request)}"
    if not _is_array(contents):
        return f"'request.contents' must be a list of objects, got {type(contents).__name__}"
    if not contents:
        return "'request.contents' is empty"
    for index, content in enumerate(contents):
        if type(content) is dict and type(content.get("parts")) is list:
            continue  # The common case, passed without building a name for a message.
        problem = _parts_problem(content, f"request.contents[{index}]")
        if problem:
            return problem
    return None


def _embed_problem(request: Mapping[str, Any]) -> str | None:
    content = request.get("content")
    if content is None:
        if "contents" in request:
            return (
                "'request' has no 'content' (it has 'contents': a generation request; "
                "submit it with GeminiSubmitBatchOperator)"
            )
        return f"'request' has no 'content'{_has(request)}"
    return _parts_problem(content, "request.content")


def _parts_problem(content: Any, where: str) -> str | None:
    if not _is_object(content):
        return f"'{where}' must be an object with 'parts', got {type(content).__name__}"
    parts = content.get("parts")
    if parts is None:
        return f"'{where}' has no 'parts'"
    if not _is_array(parts):
        return f"'{where}.parts' must be a list, got {type(parts).__name__}"
    return None


def _is_object(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # The exact check first: it is the common case.


def _is_array(value: Any) -> bool:
    return type(value) is list or isinstance(value, (list, tuple))


def _has(request: Mapping[str, Any]) -> str:
    return f" (it has {_names(request)})" if request else " (it is empty)"


def _names(mapping: Mapping[str, Any]) -> str:
    """The first few field names of ``mapping``, quoted and shortened: never their values."""
    names = [truncate(repr(str(name)), _NAME_CHARS) for name in list(mapping)[:_FIELDS_SHOWN]]
    more = len(mapping) - _FIELDS_SHOWN
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def validate_jsonl(lines: Iterable[bytes], source: str, *, kind: BatchKind | None = None) -> InputSummary:
    """Validate JSONL lines read from ``source`` (a name for messages); raise naming every bad line.

    :param kind: the kind of job the lines are for (``"generate"`` or ``"embed"``); ``None`` when not
        known yet, and then either request shape passes.
    """
    checker = ItemChecker(source, "line", kind)
    parse = pydantic_core.from_json
    count = byte_count = 0
    for number, line in enumerate(lines, start=1):
        byte_count += len(line)
        try:
            item = parse(line, cache_strings="keys")  # Twice as fast as json.loads (benchmarks/bench_input.py).
        except ValueError as exc:
            if not line.strip():
                continue
            try:
                item = json.loads(line)  # What json accepts passes, as before (a lone surrogate, say).
            except ValueError:
                checker.problems.add("line", number, f"not valid JSON ({str(exc).split(' at line ')[0]})")
                count += 1
                continue
        count += 1
        checker.check(item, number)
    checker.problems.raise_if_any(count)
    return InputSummary(count, byte_count)


def records_to_jsonl(
    records: Iterable[Any],
    out: IO[bytes],
    *,
    key_field: str = "key",
    source: str = "requests",
    kind: BatchKind | None = None,
) -> InputSummary:
    """Write records as batch input JSONL to ``out``, validating each; return what was written.

    A record is either ``{"key": ..., "request": {...}, ...extra fields echoed into results}`` or a
    flat dict holding ``key_field`` plus the request body itself (``contents``, ``generationConfig``...).
    Raises before returning if any record is bad; the caller must then discard ``out``.

    :param kind: the kind of job the records are for (``"generate"`` or ``"embed"``); ``None`` when
        not known yet, and then either request shape passes.
    """
    checker = ItemChecker(source, "record", kind, f", or flat: {key_field!r} beside the request's own fields")
    to_json = pydantic_core.to_json  # Twice as fast as json.dumps; compact UTF-8 alike.
    count = byte_count = 0
    for number, record in enumerate(records, start=1):
        count += 1
        item = _as_item(record, key_field)
        if checker.check(item, number):
            line = to_json(item) + b"\n"
            out.write(line)
            byte_count += len(line)
    checker.problems.raise_if_any(count)
    return InputSummary(count, byte_count)


def _as_item(record: Any, key_field: str) -> Any:
    if not _is_object(record):
        return record
    rest = dict(record)
    key = rest.pop(key_field, None)
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)  # Database ids are the usual keys; the wire wants strings.
    if "request" in rest:
        return {"key": key, **rest}
    return {"key": key, "request": rest}


@dataclass(frozen=True)
class PreparedInput:
    """A validated batch input: exactly one of inline ``requests`` or an uploaded ``input_file``."""

    requests: list[dict[str, Any]] | None = None
    input_file: str | None = None


def parse_records(records: Any) -> Any:
    """Return ``records`` as an iterable: a JSON string (an XCom rendered into a template) is parsed."""
    if isinstance(records, (str, bytes)):
        return json.loads(records)
    return records


def inline_item(item: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Turn one user request into the wire's inline item ``{"request", "metadata"}``."""
    if not isinstance(item, Mapping):
        raise GeminiBatchInputError(f"requests[{index}] is a {type(item).__name__}, not a dict.")
    if "request" not in item:
        return {"request": dict(item)}  # A bare GenerateContentRequest / EmbedContentRequest.
    request = item["request"]
    if not isinstance(request, Mapping):
        raise GeminiBatchInputError(f"requests[{index}]['request'] must be an object, got {type(request).__name__}.")
    metadata = dict(item.get("metadata") or {})
    if "key" in item:
        metadata.setdefault("key", item["key"])
    wire: dict[str, Any] = {"request": dict(request)}
    if metadata:
        wire["metadata"] = metadata
    return wire


def inline_body_bytes(items: list[dict[str, Any]]) -> int:
    """Bytes the inline items take in the create body, encoded as httpx encodes JSON.

    Measured on the wire shape, not the JSONL: each key moves into ``"metadata": {"key": ...}``.
    """
    wire = [inline_item(item, index) for index, item in enumerate(items)]
    return len(json.dumps(wire, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())
