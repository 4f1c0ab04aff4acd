"""``GeminiBatchTrigger``: waits for a batch job in the triggerer, holding no worker slot."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.settings import DEFAULT_OUTAGE_LIMIT, max_concurrent_polls
from airflow_provider_gemini_batch.watch import BatchWatch, Finish, WaitOutcome

T = TypeVar("T")


# Polls in flight at once across every GeminiBatchTrigger of one triggerer (one event loop), set by
# [gemini_batch] max_concurrent_polls (settings.py says why there is a cap). A slot is held for one HTTP
# attempt, not while the hook waits to retry; waiting for one counts against the deadline like the poll
# itself. Semaphores per event loop (a triggerer runs every trigger on one loop) and limit.
_POLL_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _poll_slots(limit: int) -> asyncio.Semaphore:
    by_limit = _POLL_SLOTS.setdefault(asyncio.get_running_loop(), {})
    slots = by_limit.get(limit)
    if slots is None:
        slots = by_limit[limit] = asyncio.Semaphore(limit)
    return slots


# Task instance states in which a user ended the task (mark failed / succeeded): its job goes too.
# Any other state after a kill means the task was cleared and will run again.
_ENDED_BY_USER_STATES = ["failed", "success", "skipped", "upstream_failed", "removed"]


class GeminiBatchTrigger(BaseTrigger):
    """Poll one batch job by name until it is terminal, the deadline passes or the service stays away; emit one event.

    A thin async loop around ``watch.BatchWatch``, the same decision the worker-side wait
    (``GeminiBatchHook.wait_for_batch``) uses, so the two end alike. It only polls: it never creates a
    job, so a triggerer restart or two triggerers running the same trigger (HA) cannot submit a
    duplicate. The deadline is an absolute wall-clock time, so a re-created trigger keeps it.

    The event is ``watch.WaitOutcome.as_event()``: ``{"status", "reason", "batch_name", "batch",
    "message"}`` with status ``terminal`` (reason: the final state), ``timeout`` (reason
    ``deadline``) or ``error`` (reason ``outage`` or ``api_error``).

    :param batch_name: ``batches/...`` to wait for.
    :param gemini_conn_id: the ``gemini`` connection.
    :param poll_interval: seconds between polls.
    :param deadline: Unix time at which to stop waiting (``timeout`` event).
    :param outage_limit: seconds of failing polls in a row after which to stop (``outage`` event).
    :param cancel_on_kill: cancel the job when a user marks the deferred task failed or succeeded
        (Airflow 3.3+, ``BaseTrigger.on_kill``). A cleared task keeps its job: its next try reconnects.
    :param max_consecutive_errors: ignored; accepted so that triggers serialized by 0.1 still load.
    """

    def __init__(
        self,
        batch_name: str,
        gemini_conn_id: str,
        poll_interval: float,
        deadline: float,
        outage_limit: float = DEFAULT_OUTAGE_LIMIT,
        cancel_on_kill: bool = True,
        max_consecutive_errors: int | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.batch_name = batch_name
        self.gemini_conn_id = gemini_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline)
        self.outage_limit = float(outage_limit)
        self.cancel_on_kill = bool(cancel_on_kill)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_name": self.batch_name,
                "gemini_conn_id": self.gemini_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "outage_limit": self.outage_limit,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _hook(self) -> GeminiBatchHook:
        """A hook whose every request takes one of the triggerer's poll slots (call inside the event loop)."""
        return GeminiBatchHook(gemini_conn_id=self.gemini_conn_id, async_gate=_poll_slots(max_concurrent_polls()))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        try:
            outcome = await self._wait(hook)
            yield TriggerEvent(outcome.as_event())  # type: ignore[no-untyped-call]
        finally:
            await hook.aclose()

    async def _wait(self, hook: GeminiBatchHook) -> WaitOutcome:
        # The same loop as GeminiBatchHook.wait_for_batch, awaited: the decisions are watch.BatchWatch's.
        watch = BatchWatch(self.batch_name, self.poll_interval, self.deadline, self.outage_limit)
        while True:
            decision = await hook.apoll_once(watch, log=self.log)
            if isinstance(decision, Finish):
                return decision.outcome
            await asyncio.sleep(decision.delay)

    async def on_kill(self) -> None:
        """Cancel the job when a user ends the deferred task (Airflow 3.3+ calls this; restarts don't).

        Airflow calls it for a clear too; then the task runs again and reconnects to the job, so the
        job is left running.
        """
        if not self.cancel_on_kill:
            return
        if await self._task_runs_again():
            self.log.info(
                "The deferred task was cleared: batch %s is left running for the task's next try", self.batch_name
            )
            return
        hook = self._hook()
        try:
            await hook.acancel_batch(self.batch_name)
            self.log.warning("Cancelled batch %s because the task was marked failed or succeeded", self.batch_name)
        finally:
            await hook.aclose()

    async def _task_runs_again(self) -> bool:
        """Whether the killed task instance was cleared (to run again) rather than ended by a user."""
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return False
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            map_index = getattr(ti, "map_index", -1)
            ended = await asyncio.to_thread(
                RuntimeTaskInstance.get_ti_count,
                dag_id=ti.dag_id,
                task_ids=[ti.task_id],
                run_ids=[ti.run_id],
                map_index=map_index if map_index is not None and map_index >= 0 else None,
                states=_ENDED_BY_USER_STATES,
            )
        except Exception as exc:  # Any failure to ask: cancel, as before (a job left running bills).
            self.log.warning("Could not read the state of the killed task (%s); cancelling its batch", exc)
            return False
        return ended == 0
