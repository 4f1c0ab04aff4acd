"""Typed models of the Gemini Batch and Files resources, parsed right where responses arrive.

Every model allows extra fields (``extra="allow"``) so that a field the service adds tomorrow never
breaks parsing, and accepts both the wire's camelCase and Python's snake_case names. int64 counters,
which the wire sends as strings (PROTOCOL.md), become ints; absent counters are 0 (proto3 omits zeros).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import from_json as _from_json

__all__ = [
    "Batch",
    "BatchKind",
    "BatchResult",
    "BatchState",
    "BatchStats",
    "GeminiFile",
    "Status",
]

BatchKind = Literal["generate", "embed"]


class _WireModel(BaseModel):
    """Base of every resource model: camelCase aliases, snake_case accepted, unknown fields kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class BatchState(str, enum.Enum):
    """A batch job's state, as the wire names it (``BATCH_STATE_*``).

    Unknown values are tolerated (the service may add states): they become pseudo-members that are
    not terminal, so a waiter keeps waiting instead of crashing. The SDK's ``JOB_STATE_*`` spelling
    and bare names (``SUCCEEDED``) are accepted too.
    """

    UNSPECIFIED = "BATCH_STATE_UNSPECIFIED"
    PENDING = "BATCH_STATE_PENDING"
    RUNNING = "BATCH_STATE_RUNNING"
    SUCCEEDED = "BATCH_STATE_SUCCEEDED"
    FAILED = "BATCH_STATE_FAILED"
    CANCELLED = "BATCH_STATE_CANCELLED"
    EXPIRED = "BATCH_STATE_EXPIRED"

    @classmethod
    def _missing_(cls, value: object) -> BatchState:
        if not isinstance(value, str):
            raise ValueError(f"batch state must be a string, got {type(value).__name__}")
        bare = value.upper().removeprefix("JOB_STATE_").removeprefix("BATCH_STATE_")
        known = cls.__members__.get(bare)
        if known is not None:
            return known
        pseudo = str.__new__(cls, value)
        pseudo._name_ = value
        pseudo._value_ = value
        return pseudo

    @property
    def is_terminal(self) -> bool:
        """Whether the job can no longer change state."""
        return self in _TERMINAL_STATES

    @property
    def is_known(self) -> bool:
        """Whether this is a state the protocol documents (not a pseudo-member for a new value)."""
        return self.name in type(self).__members__

    @property
    def short_name(self) -> str:
        """The state without its ``BATCH_STATE_`` prefix, for logs: ``RUNNING``."""
        return self.value.removeprefix("BATCH_STATE_")

    def __str__(self) -> str:
        return self.value


_TERMINAL_STATES = frozenset({BatchState.SUCCEEDED, BatchState.FAILED, BatchState.CANCELLED, BatchState.EXPIRED})


class Status(_WireModel):
    """A ``google.rpc.Status``: the error of a failed job or of a single failed request."""

    code: int = 0
    message: str = ""
    status: str | None = None
    details: list[dict[str, Any]] = Field(default_factory=list)


class BatchStats(_WireModel):
    """Request counters of a job. The wire sends them as strings and omits zeros."""

    request_count: int = 0
    """Requests in the job."""
    successful_request_count: int = 0
    """Requests that produced a response."""
    failed_request_count: int = 0
    """Requests that produced an error (the job itself can still succeed)."""
    pending_request_count: int = 0
    """Requests not yet processed."""

    @property
    def completed_request_count(self) -> int:
        """Requests processed so far, successful or not."""
        return self.successful_request_count + self.failed_request_count


class GeminiFile(_WireModel):
    """A file in the Files API (an uploaded JSONL input, or a generated results file)."""

    name: str
    """``files/{id}``."""
    display_name: str | None = None
    mime_type: str | None = None
    size_bytes: int = 0
    create_time: datetime | None = None
    update_time: datetime | None = None
    expiration_time: datetime | None = None
    """Files expire 48 h after upload."""
    sha256_hash: str | None = None
    uri: str | None = None
    state: str | None = None
    """``PROCESSING``, ``ACTIVE`` or ``FAILED``."""
    source: str | None = None
    """``UPLOADED`` for inputs, ``GENERATED`` for results files."""
    error: Status | None = None


class Batch(_WireModel):
    """A batch job.

    ``Batch.model_validate(operation)`` accepts the long-running Operation exactly as the service
    returns it from create, get and list: the job's fields are read from ``metadata``, the output from
    ``metadata.output`` (or ``response``), and ``done`` and ``error`` from the top level.
    """

    name: str
    """``batches/{id}``."""
    state: BatchState = BatchState.UNSPECIFIED
    model: str | None = None
    """``models/{id}``."""
    display_name: str | None = None
    kind: BatchKind = "generate"
    """``embed`` for embedding jobs (``asyncBatchEmbedContent``), else ``generate``."""
    create_time: datetime | None = None
    update_time: datetime | None = None
    end_time: datetime | None = None
    batch_stats: BatchStats = Field(default_factory=BatchStats)
    input_file: str | None = None
    """The ``files/...`` input of a file job."""
    responses_file: str | None = None
    """The ``files/batch-...`` results of a finished file job."""
    inlined_responses: list[dict[str, Any]] | None = None
    """The raw result items of a finished inline job (read them through ``BatchResult``)."""
    error: Status | None = None
    """Why a failed, cancelled or expired job ended, from the Operation's top-level ``error``."""
    done: bool = False

    @model_validator(mode="before")
    @classmethod
    def _flatten_operation(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("metadata"), Mapping):
            return data
        metadata: Mapping[str, Any] = data["metadata"]
        flat = {key: value for key, value in metadata.items() if key not in ("output", "inputConfig")}
        flat["name"] = data.get("name") or metadata.get("name")
        flat["done"] = bool(data.get("done", False))
        if data.get("error") is not None:
            flat["error"] = data["error"]
        if "EmbedContentBatch" in str(metadata.get("@type", "")):
            flat["kind"] = "embed"
        input_config = metadata.get("inputConfig") or metadata.get("input_config") or {}
        input_file = input_config.get("fileName") or input_config.get("file_name")
        if input_file:
            flat["input_file"] = input_file
        output = metadata.get("output") or data.get("response") or {}
        flat.update(_parse_output(output))
        return flat

    @property
    def id(self) -> str:
        """The id without the ``batches/`` prefix."""
        return self.name.removeprefix("batches/")

    @property
    def progress(self) -> str:
        """State and counts for logs: ``RUNNING 1200/5000 done, 3 failed``."""
        stats = self.batch_stats
        text = f"{self.state.short_name} {stats.completed_request_count}/{stats.request_count} done"
        return f"{text}, {stats.failed_request_count} failed" if stats.failed_request_count else text

    def summary(self) -> dict[str, Any]:
        """A small JSON-safe summary for XCom and logs: never results, never the request bodies."""
        stats = self.batch_stats
        return {
            "name": self.name,
            "state": self.state.value,
            "model": self.model,
            "display_name": self.display_name,
            "kind": self.kind,
            "request_count": stats.request_count,
            "succeeded_count": stats.successful_request_count,
            "failed_count": stats.failed_request_count,
            "pending_count": stats.pending_request_count,
            "input_file": self.input_file,
            "responses_file": self.responses_file,
            "has_inline_results": self.inlined_responses is not None,
            "error": self.error.message if self.error else None,
            "create_time": self.create_time.isoformat() if self.create_time else None,
            "end_time": self.end_time.isoformat() if self.end_time else None,
        }


def _parse_output(output: Mapping[str, Any]) -> dict[str, Any]:
    """Read a ``GenerateContentBatchOutput`` / ``EmbedContentBatchOutput`` into flat fields."""
    parsed: dict[str, Any] = {}
    responses_file = output.get("responsesFile") or output.get("responses_file")
    if responses_file:
        parsed["responses_file"] = responses_file
    for wrapper_key in (
        "inlinedResponses",
        "inlined_responses",
        "inlinedEmbedContentResponses",
        "inlined_embed_content_responses",
    ):
        wrapper = output.get(wrapper_key)
        if isinstance(wrapper, Mapping):
            items = wrapper.get("inlinedResponses") or wrapper.get("inlined_responses") or []
            parsed["inlined_responses"] = list(items)
            break
    return parsed


class BatchResult:
    """The outcome of one request in a batch: a response or an error, matched by ``key``.

    Build it from a results-file line (``{"key", "response" | "error", ...}``) with ``from_json``,
    from the same object already parsed with ``from_dict``, or from an inline item
    (``{"response" | "error", "metadata": {"key"}}``) with ``from_inline``. Results may come back in
    any order: always match on ``key``.

    A plain class rather than a pydantic model: results files run to millions of lines, and
    validating each one as a model halves the rate at which they can be read (``make bench``, row 2).
    ``from_json`` and ``from_dict`` check what the model did: ``key`` is a string or absent,
    ``response`` an object or absent, ``error`` a ``Status``; anything else raises ``ValueError``.
    The constructor takes its arguments as given. ``as_dict`` gives the object back; Airflow's XCom
    serialisation works as for the pydantic models here (deserialising needs the class in
    ``[core] allowed_deserialization_classes``, as theirs does).

    :param key: the request's key (``None`` for an inline job without one).
    :param response: the raw ``GenerateContentResponse`` (or embedding response), untouched.
    :param error: the request's error.
    :param extra: other top-level fields of the line (the input line's own fields, echoed back).
    :param raw: the results-file line exactly as the service wrote it (``None`` for inline results).
    """

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
        data = _from_json(line, cache_strings="keys")
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
        if not candidates:
            return None
        content = candidates[0].get("content")
        parts = content.get("parts") if content else None
        if not parts:
            return None
        texts = [part["text"] for part in parts if type(part.get("text")) is str and not part.get("thought")]
        return "".join(texts) if texts else None

    @property
    def usage(self) -> dict[str, int]:
        """Token counts from ``usageMetadata`` (empty for errors and embeddings)."""
        usage = self.response.get("usageMetadata") if self.response else None
        if not usage:
            return {}
        counts = {}
        for name, value in usage.items():
            if type(value) is int:  # int32 counters arrive as numbers; bools and per-modality lists are skipped
                counts[name] = value
            elif type(value) is str and value.isdigit():  # int64 ones as strings (PROTOCOL.md)
                counts[name] = int(value)
        return counts

    @property
    def embedding(self) -> list[float] | None:
        """The embedding values of an embeddings result, or ``None``."""
        values = ((self.response or {}).get("embedding") or {}).get("values")
        return [float(value) for value in values] if isinstance(values, list) else None


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
