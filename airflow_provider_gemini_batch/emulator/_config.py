"""The emulator's tunable behaviour: job timing, job outcome, upload chunk granularity, known models,
webhook deliveries.

Each batch job captures a copy of the configuration when it is created, so changing the
configuration later only affects new jobs.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from airflow_provider_gemini_batch.emulator._webhooks import new_signing_secret, secret_key

__all__ = [
    "DEFAULT_CHUNK_GRANULARITY",
    "DEFAULT_EMBEDDING_MODELS",
    "DEFAULT_GENERATION_MODELS",
    "NON_TERMINAL_STATES",
    "TERMINAL_STATES",
    "WEBHOOK_RESULTS_FIELDS",
    "EmulatorConfig",
    "normalize_state",
]

#: What the live service announces in ``X-Goog-Upload-Chunk-Granularity`` (8 MiB).
DEFAULT_CHUNK_GRANULARITY = 8 * 1024 * 1024

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})
NON_TERMINAL_STATES = frozenset({"PENDING", "RUNNING"})
_STATE_NAME = re.compile(r"[A-Z][A-Z0-9_]*")

#: Models a generation batch (``batchGenerateContent``) may name by default: the current Gemini 2.5
#: and 3 text models, their ``-latest`` aliases, and the image models (docs/protocol.md "Media").
DEFAULT_GENERATION_MODELS = tuple(
    f"models/{model_id}"
    for model_id in (
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-3-pro-preview",
        "gemini-3-flash-preview",
        "gemini-3.1-pro-preview",
        "gemini-3.1-flash-lite-preview",
        "gemini-pro-latest",
        "gemini-flash-latest",
        "gemini-flash-lite-latest",
        "gemini-2.5-flash-image",
        "gemini-3-pro-image-preview",
    )
)
#: Models an embeddings batch (``asyncBatchEmbedContent``) may name by default (docs/protocol.md "Models").
DEFAULT_EMBEDDING_MODELS = ("models/gemini-embedding-001", "models/gemini-embedding-2")
_MODEL_NAME = re.compile(r"(?:models|tunedModels)/[A-Za-z0-9][A-Za-z0-9._-]*")
_MODEL_SETTINGS = ("generation_models", "embedding_models")
_WEBHOOK_SECONDS = (
    "webhook_first_retry_seconds",
    "webhook_max_retry_seconds",
    "webhook_retry_seconds",
    "webhook_attempt_timeout_seconds",
)
#: Where a delivery names a succeeded file job's results file (docs/protocol.md "Webhooks" lists both).
WEBHOOK_RESULTS_FIELDS = ("output_file_uri", "file_name")


def normalize_state(value: object, *, allow_unknown: bool = False) -> str:
    """Accept ``SUCCEEDED``, ``BATCH_STATE_SUCCEEDED`` or ``JOB_STATE_SUCCEEDED``; return ``SUCCEEDED``.

    With ``allow_unknown``, any upper-case name passes too (e.g. ``PAUSED_FOR_MAINTENANCE``): the
    live service may add states, and clients must treat an unknown one as non-terminal.

    :raises ValueError: for anything that is not a batch state.
    """
    if not isinstance(value, str):
        raise ValueError(f"A state must be a string, got {type(value).__name__}.")
    state = value.upper().removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
    known = TERMINAL_STATES | NON_TERMINAL_STATES
    if state in known or (allow_unknown and _STATE_NAME.fullmatch(state)):
        return state
    raise ValueError(f"Unknown state {value!r}: use one of {sorted(known)}.")


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Settings the control API can change at run time.

    :param pending_seconds: how long a new job stays PENDING.
    :param running_seconds: how long it then stays RUNNING.
    :param outcome: the terminal state it reaches afterwards.
    :param outcome_message: the ``error.message`` of a FAILED / CANCELLED / EXPIRED outcome.
    :param chunk_granularity: the upload chunk granularity announced to new upload sessions.
    :param discard_uploads: keep no uploaded bytes. Uploads still follow the protocol (offsets,
        granularity, finalize) and the file is listed with its size, but without ``sha256Hash`` and
        without content: a batch on it or a download of it is refused. For measuring clients
        (``make bench``), where hashing and writing the bytes would make the emulator the bottleneck.
    :param generation_models: the models a generation batch may name; any other is 404 NOT_FOUND,
        as on the service. Names are ``models/{id}`` or ``tunedModels/{id}``; :meth:`merged` adds
        ``models/`` to a bare id.
    :param embedding_models: the same for embeddings batches. A model is in one list or the other.
    :param job_webhook_secret: the ``whsec_`` secret that signs deliveries to a job's own
        ``webhookConfig.uris``. How the live service signs those is not confirmed (docs/protocol.md
        "Webhooks"); signing them like project webhooks, with this secret, is the emulator's choice.
        A fresh one is generated when the emulator starts (a reset keeps it).
    :param webhook_first_retry_seconds: the pause after a failed delivery attempt; it doubles after
        each further failure, up to ``webhook_max_retry_seconds``.
    :param webhook_max_retry_seconds: the longest pause between two attempts.
    :param webhook_retry_seconds: how long after its first attempt a delivery is given up (the live
        service retries for about 24 hours; a short default keeps tests short).
    :param webhook_attempt_timeout_seconds: how long one attempt may take before it counts as failed.
    :param webhook_results_field: the ``data`` field naming a succeeded file job's results file,
        ``output_file_uri`` (default) or ``file_name``: the payload is not confirmed, so a receiver
        can be tested with both.
    :param max_concurrent_jobs: how many jobs may be PENDING or RUNNING at once (the service allows
        100 per project); a create over it is 429 RESOURCE_EXHAUSTED and makes no job. ``None``: no limit.
    :param max_enqueued_tokens: how many input tokens the PENDING and RUNNING jobs of one model may
        hold together (the service's per-model, per-tier limit); a create that would go over it is
        429 RESOURCE_EXHAUSTED. Tokens are estimated as a quarter of each request's bytes, rounded
        up (a file job: each input line, without its newline), as the provider's splitter estimates
        them. ``None``: no limit.
    :param quota_retry_seconds: the ``RetryInfo.retryDelay`` a 429 at create carries.
    """

    pending_seconds: float = 0.0
    running_seconds: float = 0.0
    outcome: str = "SUCCEEDED"
    outcome_message: str | None = None
    chunk_granularity: int = DEFAULT_CHUNK_GRANULARITY
    discard_uploads: bool = False
    generation_models: tuple[str, ...] = DEFAULT_GENERATION_MODELS
    embedding_models: tuple[str, ...] = DEFAULT_EMBEDDING_MODELS
    job_webhook_secret: str = dataclasses.field(default_factory=new_signing_secret)
    webhook_first_retry_seconds: float = 0.5
    webhook_max_retry_seconds: float = 5.0
    webhook_retry_seconds: float = 30.0
    webhook_attempt_timeout_seconds: float = 5.0
    webhook_results_field: str = "output_file_uri"
    max_concurrent_jobs: int | None = None
    max_enqueued_tokens: int | None = None
    quota_retry_seconds: float = 5.0

    def merged(self, updates: dict[str, Any]) -> EmulatorConfig:
        """Return a copy with ``updates`` applied and validated.

        :raises ValueError: on an unknown key or an invalid value.
        """
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(updates) - known)
        if unknown:
            raise ValueError(f"Unknown configuration keys {unknown}: use {sorted(known)}.")
        if "outcome" in updates:
            updates = {**updates, "outcome": normalize_state(updates["outcome"])}
        for setting in _MODEL_SETTINGS:
            if setting in updates:
                updates = {**updates, setting: _model_names(setting, updates[setting])}
        merged = dataclasses.replace(self, **updates)
        merged.validate()
        return merged

    def validate(self) -> None:
        """Check every field; raise :class:`ValueError` naming the first bad one."""
        for name in ("pending_seconds", "running_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        if self.outcome not in TERMINAL_STATES:
            raise ValueError(f"outcome must be one of {sorted(TERMINAL_STATES)}, got {self.outcome!r}.")
        granularity = self.chunk_granularity
        if not isinstance(granularity, int) or isinstance(granularity, bool) or granularity <= 0:
            raise ValueError(f"chunk_granularity must be a positive integer, got {granularity!r}.")
        if not isinstance(self.discard_uploads, bool):
            raise ValueError(f"discard_uploads must be true or false, got {self.discard_uploads!r}.")
        if self.outcome_message is not None and not isinstance(self.outcome_message, str):
            raise ValueError("outcome_message must be a string or null.")
        for setting in _MODEL_SETTINGS:
            names = getattr(self, setting)
            if not isinstance(names, tuple) or not all(
                isinstance(name, str) and _MODEL_NAME.fullmatch(name) for name in names
            ):
                raise ValueError(
                    f"{setting} must be a tuple of 'models/...' or 'tunedModels/...' names, got {names!r}."
                )
        self._validate_webhooks()
        self._validate_quota()
        shared = sorted(set(self.generation_models) & set(self.embedding_models))
        if shared:
            raise ValueError(
                f"generation_models and embedding_models share {shared}: a model is one kind or the other."
            )

    def _validate_webhooks(self) -> None:
        for name in _WEBHOOK_SECONDS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}.")
        try:
            secret_key(self.job_webhook_secret)
        except ValueError as error:
            raise ValueError(f"job_webhook_secret: {error}") from error
        if self.webhook_results_field not in WEBHOOK_RESULTS_FIELDS:
            raise ValueError(
                f"webhook_results_field must be one of {list(WEBHOOK_RESULTS_FIELDS)}, "
                f"got {self.webhook_results_field!r}."
            )

    def _validate_quota(self) -> None:
        for name in ("max_concurrent_jobs", "max_enqueued_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or null (no limit), got {value!r}.")
        delay = self.quota_retry_seconds
        if not isinstance(delay, int | float) or isinstance(delay, bool) or not math.isfinite(delay) or delay < 0:
            raise ValueError(f"quota_retry_seconds must be a number >= 0, got {delay!r}.")

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as JSON primitives."""
        return dataclasses.asdict(self)


def _model_names(setting: str, value: object) -> tuple[str, ...]:
    """Read a list of model names (``gemini-2.5-flash``, ``models/...``, ``tunedModels/...``) as full names."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"{setting} must be a list of model names, got {value!r}.")
    names = []
    for item in value:
        name = item if isinstance(item, str) and "/" in item else f"models/{item}"
        if not isinstance(item, str) or not _MODEL_NAME.fullmatch(name):
            raise ValueError(
                f"{setting}: {item!r} is not a model name: use 'gemini-2.5-flash', 'models/...' or 'tunedModels/...'."
            )
        names.append(name)
    return tuple(dict.fromkeys(names))
