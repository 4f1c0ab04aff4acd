"""What a finished wait means for the task: shared by the submit operator, the sensor and the trigger.

A job is only a task success when it SUCCEEDED *and* its failed requests stay within the policy
(PROTOCOL.md: "SUCCEEDED does not mean the requests succeeded"). FAILED, CANCELLED, EXPIRED and
our own deadline each raise their own exception class, chosen from the state, never from text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchCancelled,
    GeminiBatchError,
    GeminiBatchExpired,
    GeminiBatchFailed,
    GeminiBatchJobError,
    GeminiBatchPartialFailure,
    GeminiBatchTimeout,
)
from airflow_provider_gemini_batch.models import Batch, BatchState

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.hooks import GeminiBatchHook

log = logging.getLogger(__name__)

EventStatus = Literal["terminal", "timeout", "error"]
EVENT_STATUSES: frozenset[str] = frozenset({"terminal", "timeout", "error"})

_STATE_ERRORS: dict[BatchState, type[GeminiBatchJobError]] = {
    BatchState.FAILED: GeminiBatchFailed,
    BatchState.CANCELLED: GeminiBatchCancelled,
    BatchState.EXPIRED: GeminiBatchExpired,
}


@dataclass(frozen=True)
class FailurePolicy:
    """When a SUCCEEDED job has failed too many requests to count as success.

    :param max_failed_requests: most failed requests allowed; ``None`` for no limit by count.
    :param max_failed_ratio: largest failed share allowed (0.0 to 1.0); ``None`` for no limit by share.

    With neither set, the task fails only when every request failed.
    """

    max_failed_requests: int | None = None
    max_failed_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.max_failed_requests is not None and self.max_failed_requests < 0:
            raise ValueError(f"max_failed_requests must be 0 or more, got {self.max_failed_requests}.")
        if self.max_failed_ratio is not None and not 0.0 <= self.max_failed_ratio <= 1.0:
            raise ValueError(f"max_failed_ratio must be between 0.0 and 1.0, got {self.max_failed_ratio}.")

    def violation(self, batch: Batch) -> str | None:
        """Say why the job's failed requests exceed the policy, or ``None`` when they don't."""
        failed = batch.batch_stats.failed_request_count
        total = batch.batch_stats.request_count
        if not failed:
            return None
        if self.max_failed_requests is not None and failed > self.max_failed_requests:
            return f"{failed} of {total} requests failed, more than max_failed_requests={self.max_failed_requests}"
        if self.max_failed_ratio is not None and total and failed / total > self.max_failed_ratio:
            return f"{failed} of {total} requests failed, more than max_failed_ratio={self.max_failed_ratio}"
        if self.max_failed_requests is None and self.max_failed_ratio is None and failed >= total:
            return f"all {total} requests failed"
        return None


def raise_for_outcome(batch: Batch, policy: FailurePolicy) -> None:
    """Return quietly when the finished job counts as success; raise its exception class otherwise."""
    message = batch.error.message if batch.error else None
    error_class = _STATE_ERRORS.get(batch.state)
    if error_class is not None:
        error = error_class(batch.name, batch.state.value, message)
        log.error("%s", error)  # The service's reason belongs in the task log, not only in the traceback.
        raise error
    if batch.state is not BatchState.SUCCEEDED:
        raise GeminiBatchError(f"Batch {batch.name} is not finished (state {batch.state.value}).")
    violation = policy.violation(batch)
    if violation:
        raise GeminiBatchPartialFailure(
            batch.name,
            batch.state.value,
            violation,
            hint="The successful results are still downloadable; raise the limits to accept this.",
        )
    if batch.batch_stats.failed_request_count:
        log.warning("Batch %s succeeded with %s (within policy)", batch.name, batch.progress)


def make_event(status: EventStatus, reason: str, batch: Batch, message: str) -> dict[str, Any]:
    """The one event a trigger emits: JSON primitives only, never results."""
    return {
        "status": status,
        "reason": reason,
        "batch_name": batch.name,
        "batch": batch.model_dump(mode="json", exclude={"inlined_responses"}),
        "message": message,
    }


@dataclass(frozen=True)
class ExitActions:
    """Which exits cancel the remote job (each on by default: a forgotten job keeps billing)."""

    cancel_on_timeout: bool = True
    cancel_on_error: bool = True


def finish_from_event(
    event: dict[str, Any] | None, hook: GeminiBatchHook, policy: FailurePolicy, actions: ExitActions
) -> Batch:
    """Validate a trigger event and turn it into the task's outcome: the batch, or an exception."""
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES or not event.get("batch_name"):
        raise GeminiBatchError(
            f"Received an invalid trigger event: {str(event)[:200]!r}. This is a bug; please report it."
        )
    batch = Batch.model_validate(event.get("batch") or {"name": event["batch_name"]})
    if event["status"] == "terminal":
        raise_for_outcome(batch, policy)
        return batch
    if event["status"] == "timeout":
        raise timeout_error(batch, hook, actions.cancel_on_timeout, str(event.get("message", "")))
    if actions.cancel_on_error:
        cancel_quietly(hook, batch.name, "the wait failed")
    raise GeminiBatchError(f"Waiting for batch {batch.name} failed: {event.get('message')}")


def timeout_error(batch: Batch, hook: GeminiBatchHook, cancel: bool, message: str) -> GeminiBatchTimeout:
    """Cancel the job if asked, and build the deadline exception."""
    if cancel:
        cancel_quietly(hook, batch.name, "the deadline passed")
        hint = "The job was cancelled; raise the timeout to wait longer."
    else:
        hint = "The job was left running (cancel_on_timeout=False)."
    return GeminiBatchTimeout(batch.name, batch.state.value, message, hint=hint)


def cancel_quietly(hook: GeminiBatchHook, batch_name: str, why: str) -> None:
    """Cancel a job on an exit path; a failure to cancel is logged, never hides the original error."""
    try:
        hook.cancel_batch(batch_name)
        log.warning("Cancelled batch %s because %s", batch_name, why)
    except GeminiBatchError as exc:
        log.error("Could not cancel batch %s after %s: %s", batch_name, why, exc)


def wait_until_terminal(hook: GeminiBatchHook, batch_name: str, *, poll_interval: float, deadline: float) -> Batch:
    """Poll with the sync client until the job is terminal or the deadline passes; return the last state.

    Used where a worker slot is held anyway (``deferrable=False``, the cancel operator's wait).
    """
    last_progress = ""
    while True:
        batch = hook.get_batch(batch_name)
        if batch.progress != last_progress:
            last_progress = batch.progress
            log.info("Batch %s: %s", batch_name, last_progress)
        remaining = deadline - time.time()
        if batch.state.is_terminal or remaining <= 0:
            return batch
        time.sleep(min(poll_interval, remaining))
