"""What a finished wait means for the task: shared by the submit operator and the sensor, in both modes.

A job is only a task success when it SUCCEEDED *and* its failed requests stay within the policy
(``docs/protocol.md``, "SUCCEEDED does not mean the requests succeeded"). FAILED, CANCELLED, EXPIRED and
our own deadline each raise their own exception class, chosen from the state, never from text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchCancelled,
    GeminiBatchConnectionError,
    GeminiBatchError,
    GeminiBatchExpired,
    GeminiBatchFailed,
    GeminiBatchJobError,
    GeminiBatchPartialFailure,
    GeminiBatchTimeout,
)
from airflow_provider_gemini_batch.models import Batch, BatchResult, BatchState
from airflow_provider_gemini_batch.watch import WaitOutcome

log = logging.getLogger(__name__)

#: Cancels a job on an exit path, given its name and why; never raises (``GeminiBatchHook.cancel_quietly``).
Canceller = Callable[[str, str], object]

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


@dataclass(frozen=True)
class MissingResultsPolicy:
    """How many requests of a sharded input may end without a result (a shard's job failed, or its
    results lack keys) before merging its results fails the task.

    :param max_missing_results: most requests allowed without a result (default 0: every key accounted for).
    :param max_missing_ratio: largest share allowed without a result (0.0 to 1.0); ``None`` for no limit by share.
    """

    max_missing_results: int | None = 0
    max_missing_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.max_missing_results is not None and self.max_missing_results < 0:
            raise ValueError(f"max_missing_results must be 0 or more, got {self.max_missing_results}.")
        if self.max_missing_ratio is not None and not 0.0 <= self.max_missing_ratio <= 1.0:
            raise ValueError(f"max_missing_ratio must be between 0.0 and 1.0, got {self.max_missing_ratio}.")

    def violation(self, missing: int, expected: int) -> str | None:
        """Say why ``missing`` of ``expected`` results is too many, or ``None`` when it is allowed."""
        if not missing:
            return None
        what = f"{missing} of {expected} requests have no result, more than"
        if self.max_missing_results is not None and missing > self.max_missing_results:
            return f"{what} max_missing_results={self.max_missing_results}"
        if self.max_missing_ratio is not None and expected and missing / expected > self.max_missing_ratio:
            return f"{what} max_missing_ratio={self.max_missing_ratio}"
        return None


def wants_error_sample(outcome: WaitOutcome, policy: FailurePolicy) -> bool:
    """Whether ``settle`` will raise ``GeminiBatchPartialFailure``, so its message wants the first failures.

    The caller then reads them (``GeminiBatchHook.sample_errors``) and passes them to ``settle``; a job
    that ends any other way costs no look at its results.
    """
    batch = outcome.batch
    return outcome.kind == "terminal" and batch.state is BatchState.SUCCEEDED and policy.violation(batch) is not None


def raise_for_outcome(batch: Batch, policy: FailurePolicy, first_errors: Sequence[BatchResult] = ()) -> None:
    """Return quietly when the finished job counts as success; raise its exception class otherwise.

    :param first_errors: the job's first failed requests, quoted when the job fails ``policy``
        (see :func:`wants_error_sample`); only their keys and error messages are used.
    """
    message = batch.error.message if batch.error else None
    error_class = _STATE_ERRORS.get(batch.state)
    if error_class is not None:
        error = error_class(batch.name, batch.state.value, message)
        log.error("%s", error)  # The service's reason belongs in the task log, not only in the traceback.
        raise error
    if batch.state is not BatchState.SUCCEEDED:
        raise GeminiBatchError(f"Batch {batch.name} is not finished (state {batch.state.short_name})")
    violation = policy.violation(batch)
    if violation:
        raise GeminiBatchPartialFailure(
            batch.name,
            batch.state.value,
            violation,
            hint="The successful results are still downloadable; raise the limits to accept this.",
            first_errors=[
                (result.key, result.error.message or result.error.status or "(no message)")
                for result in first_errors
                if result.error is not None
            ],
        )
    stats = batch.batch_stats
    if stats.failed_request_count:
        log.warning(
            "Batch %s succeeded; %d of its %d requests failed, within the partial-failure policy",
            batch.name,
            stats.failed_request_count,
            stats.request_count,
        )


@dataclass(frozen=True)
class ExitActions:
    """Which exits cancel the remote job. An outage never does: the job is fine, and a retry reconnects.

    :param cancel_on_timeout: cancel when the wait's deadline passes (a forgotten job keeps billing).
    :param cancel_on_error: cancel when the wait ends on a permanent error (401/403, invalid argument).
    """

    cancel_on_timeout: bool = True
    cancel_on_error: bool = True


def settle(
    outcome: WaitOutcome,
    policy: FailurePolicy,
    actions: ExitActions,
    cancel: Canceller,
    first_errors: Sequence[BatchResult] = (),
) -> Batch:
    """Turn how a wait ended into the task's outcome: the batch, or the exception for that exit.

    The same for every wait (trigger event or worker-side loop), so both modes end alike:

    - ``terminal``: success, or the job state's own exception (see :func:`raise_for_outcome`, which
      quotes ``first_errors`` when the job fails ``policy``);
    - ``timeout``: ``GeminiBatchTimeout``, after cancelling the job when ``cancel_on_timeout``;
    - ``outage``: ``GeminiBatchConnectionError``; the job is left running for a retry to reconnect to;
    - ``error``: ``GeminiBatchError`` with the cause, after cancelling when ``cancel_on_error``.
    """
    batch = outcome.batch
    if outcome.kind == "terminal":
        raise_for_outcome(batch, policy, first_errors)
        return batch
    if outcome.kind == "timeout":
        if actions.cancel_on_timeout:
            cancel(batch.name, "the wait's deadline passed")
            hint = "The job was cancelled; raise the timeout to wait longer."
        else:
            hint = "The job was left running (cancel_on_timeout=False)."
        error = GeminiBatchTimeout(batch.name, batch.state.value, outcome.message, hint=hint)
        log.error("%s", error)
        raise error
    if outcome.kind == "outage":
        raise GeminiBatchConnectionError(outcome.message)
    if actions.cancel_on_error:
        cancel(batch.name, "the wait ended on an error")
    raise GeminiBatchError(outcome.message)
