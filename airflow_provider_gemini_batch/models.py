"""Typed models of the Gemini Batch, Files and Webhooks resources, parsed right where responses arrive.

Every model allows extra fields (``extra="allow"``) so that a field the service adds tomorrow never
breaks parsing, and accepts both the wire's camelCase and Python's snake_case names. int64 counters,
which the wire sends as strings (``docs/protocol.md``, "Wire encoding"), become ints; absent
counters are 0 (proto3 omits zeros).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "Batch",
    "BatchKind",
    "BatchResult",
    "BatchState",
    "BatchStats",
    "GeminiFile",
    "RotatedSigningSecret",
    "SigningSecret",
    "Status",
    "Webhook",
]

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.batch_results import BatchResult

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


class SigningSecret(_WireModel):
    """One of a webhook's signing secrets, as listed: never the secret itself, only its end and its expiry."""

    expire_time: datetime | None = None
    """When the service stops signing with it (set on the previous secret after a rotation)."""
    truncated_secret: str | None = None
    """A shortened form of the secret, to tell secrets apart."""


class Webhook(_WireModel):
    """A project-level webhook: where the service POSTs events such as ``batch.succeeded``.

    The signing secret is in ``new_signing_secret`` **only** in the reply to the create that made the
    webhook (``GeminiBatchHook.create_webhook``); it cannot be read again, only rotated
    (``rotate_webhook_signing_secret``). It is a ``SecretStr``: ``repr``, ``str`` and logs show
    ``**********``, and ``model_dump`` leaves it out; read it with ``get_secret_value()``.

    The official SDK's shape (an ``id``, with ``name`` the user's label) is read too: the resource
    name is then ``webhooks/{id}`` and the label is ``display_name``.
    """

    name: str
    """``webhooks/{id}``."""
    display_name: str | None = None
    uri: str = ""
    """Where events are delivered."""
    subscribed_events: list[str] = Field(default_factory=list)
    """Event types delivered: ``batch.succeeded``, ``batch.failed``, ``batch.cancelled``, ``batch.expired``, ..."""
    state: str | None = None
    """``enabled``, ``disabled`` or ``disabled_due_to_failed_deliveries`` (a new value is kept as is)."""
    signing_secrets: list[SigningSecret] = Field(default_factory=list)
    create_time: datetime | None = None
    update_time: datetime | None = None
    new_signing_secret: SecretStr | None = Field(default=None, exclude=True)
    """The ``whsec_...`` signing secret: present only in the create reply. Never logged nor dumped."""

    @model_validator(mode="before")
    @classmethod
    def _resource_name_from_id(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not data.get("id"):
            return data
        name = data.get("name")
        if isinstance(name, str) and name.startswith("webhooks/"):
            return data
        flat = {key: value for key, value in data.items() if key != "name"}
        if name and not (data.get("displayName") or data.get("display_name")):
            flat["display_name"] = name
        flat["name"] = f"webhooks/{data['id']}"
        return flat

    @property
    def id(self) -> str:
        """The id without the ``webhooks/`` prefix."""
        return self.name.removeprefix("webhooks/")

    def summary(self) -> dict[str, Any]:
        """A small JSON-safe summary for XCom and logs: name, uri and events; never a secret."""
        return {"name": self.name, "uri": self.uri, "subscribed_events": list(self.subscribed_events)}


class RotatedSigningSecret(_WireModel):
    """The reply to ``rotateSigningSecret``: the new ``whsec_...`` secret, shown once.

    ``secret`` is a ``SecretStr`` (shown as ``**********``, left out of ``model_dump``); read it with
    ``get_secret_value()`` and store it where the receiver reads it (the connection extra
    ``webhook_secret``).
    """

    secret: SecretStr | None = Field(default=None, exclude=True)


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


def __getattr__(name: str) -> Any:
    # BatchResult is defined with the results fast path (batch_results, which imports this module),
    # and is public here, under this name, for Airflow's serde too; it is imported on first use.
    if name == "BatchResult":
        from airflow_provider_gemini_batch.batch_results import BatchResult

        return BatchResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
