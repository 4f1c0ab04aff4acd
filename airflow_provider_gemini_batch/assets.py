"""The asset a finished batch job announces itself on, and how DAGs read what it carries.

Two paths feed one asset per connection, :func:`gemini_batch_completed`:

- **push**: the webhook receiver (``plugins``) records an event when a signed webhook arrives;
- **pull**: ``GeminiBatchCompletedTrigger`` (an ``AssetWatcher``'s trigger) lists the connection's
  jobs and emits one event per job that became terminal since its last look, so that a lost
  webhook costs one interval, not a missed run.

A DAG scheduled on the asset reads the jobs with :func:`completed_batches`, whichever path recorded
them. Everything here is pure: no I/O, importable anywhere (DAG files included).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from airflow_provider_gemini_batch.models import BatchState

__all__ = [
    "EVENT_TYPES",
    "CompletedBatch",
    "completed_batches",
    "gemini_batch_completed",
]

ASSET_GROUP = "gemini_batch"

EVENT_TYPES: Mapping[str, BatchState] = {
    "batch.succeeded": BatchState.SUCCEEDED,
    "batch.failed": BatchState.FAILED,
    "batch.cancelled": BatchState.CANCELLED,
    "batch.expired": BatchState.EXPIRED,
}
"""The webhook event types of batch completion, and the final state each announces."""

Source = Literal["webhook", "poll"]


def gemini_batch_completed(conn_id: str = "gemini_default") -> Any:
    """The asset on which jobs of connection ``conn_id`` announce that they finished.

    Schedule a DAG on it (``schedule=[gemini_batch_completed("gemini_default")]``) to run when a job
    reaches a final state, and read which jobs with :func:`completed_batches`. The same call returns
    an equal asset everywhere: in the receiver, in the safety net's ``AssetWatcher``, in DAG files.
    """
    from airflow.sdk import Asset

    if not conn_id or "/" in conn_id:
        raise ValueError(f"conn_id {conn_id!r} is not a connection id: pass one such as 'gemini_default'.")
    return Asset(
        name=f"gemini_batch_completed/{conn_id}",
        uri=f"gemini-batch://{conn_id}/completed",
        group=ASSET_GROUP,
    )


@dataclass(frozen=True)
class CompletedBatch:
    """One job that reached a final state, as an asset event carries it (its ``extra``).

    :param batch: the job's name, ``batches/...``.
    :param state: its final state (``BATCH_STATE_SUCCEEDED``, ...).
    :param results_file: the ``files/...`` name of its results file, when the announcement names one
        (file-input jobs; an inline job's results are read from the job itself).
    :param user_metadata: what the job's ``webhookConfig.user_metadata`` carried (push only).
    :param source: which path recorded it: ``webhook`` (push) or ``poll`` (the safety net).
    :param webhook_id: the delivery's ``webhook-id`` (push only); the same on every redelivery.
    :param error: the job's error message, for a failed job, when the announcement carries one.
    """

    batch: str
    state: str
    results_file: str | None = None
    user_metadata: dict[str, Any] = field(default_factory=dict)
    source: Source = "webhook"
    webhook_id: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the job itself succeeded (its requests may still have failed one by one)."""
        return BatchState(self.state) is BatchState.SUCCEEDED

    def as_extra(self) -> dict[str, Any]:
        """The asset event's ``extra`` (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any] | None) -> CompletedBatch | None:
        """Read an event's ``extra``; ``None`` for an event that does not announce a job.

        Events from a trigger arrive wrapped by Airflow as ``{"from_trigger": true, "payload": {...}}``.
        """
        if not isinstance(extra, Mapping):
            return None
        payload = extra.get("payload") if extra.get("from_trigger") else extra
        if not isinstance(payload, Mapping) or not isinstance(payload.get("batch"), str):
            return None
        metadata = payload.get("user_metadata")
        return cls(
            batch=payload["batch"],
            state=str(payload.get("state") or BatchState.UNSPECIFIED.value),
            results_file=payload.get("results_file") or None,
            user_metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
            source="poll" if payload.get("source") == "poll" else "webhook",
            webhook_id=payload.get("webhook_id") or None,
            error=payload.get("error") or None,
        )


def completed_batches(events: Iterable[Any]) -> list[CompletedBatch]:
    """The jobs announced by a run's triggering asset events, each once, in the order announced.

    Pass ``triggering_asset_events[gemini_batch_completed(conn_id)]`` (a list of asset events), or
    any iterable of events or of their ``extra`` mappings. Events that do not announce a job are
    skipped; a job announced twice (by both paths, or redelivered) is listed once.
    """
    seen: set[str] = set()
    found: list[CompletedBatch] = []
    for event in events:
        extra = event if isinstance(event, Mapping) else getattr(event, "extra", None)
        completed = CompletedBatch.from_extra(extra)
        if completed is not None and completed.batch not in seen:
            seen.add(completed.batch)
            found.append(completed)
    return found


def handled_key(batch: str) -> str:
    """The asset state store key (Airflow 3.3+) that marks ``batch`` as announced by either path.

    The receiver and the safety net both check it before recording, so that a job the webhook
    announced is not announced again by the poll, nor the other way round.
    """
    return f"handled:{batch}"


WATERMARK_KEY = "watermark"
"""The asset state store key under which the safety net keeps the end time of the newest job it saw."""
