"""``GeminiBatchTrigger``: waits for a batch job in the triggerer, holding no worker slot."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Awaitable
from typing import Any, ClassVar, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_gemini_batch._completion import make_event
from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchConnectionError,
    GeminiBatchError,
    GeminiBatchRateLimitError,
    GeminiBatchServerError,
)
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import Batch

T = TypeVar("T")

# Errors that say nothing about the job, only about the road to it: keep polling.
_TRANSIENT_ERRORS = (GeminiBatchConnectionError, GeminiBatchServerError, GeminiBatchRateLimitError)


# Semaphores per event loop (a triggerer runs every trigger on one loop) and limit: see max_concurrent_polls.
_POLL_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _poll_slots(limit: int) -> asyncio.Semaphore:
    by_limit = _POLL_SLOTS.setdefault(asyncio.get_running_loop(), {})
    slots = by_limit.get(limit)
    if slots is None:
        slots = by_limit[limit] = asyncio.Semaphore(limit)
    return slots


class _PollTimedOut(Exception):
    """A poll (with its retries) did not finish before the deadline."""


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    """Await ``awaitable`` for at most ``seconds``, else raise ``_PollTimedOut``.

    Not ``asyncio.wait_for``: on Python 3.10 and 3.11 it can swallow a cancellation that arrives as
    the inner call finishes, and a trigger that ignores the triggerer's cancel polls forever.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise _PollTimedOut
    return task.result()


class GeminiBatchTrigger(BaseTrigger):
    """Poll one batch job by name until it is terminal or the deadline passes; emit exactly one event.

    It only polls: it never creates a job, so a triggerer restart or two triggerers running the same
    trigger (HA) cannot submit a duplicate. The deadline is an absolute wall-clock time, so a
    re-created trigger keeps the original one.

    The event is ``{"status", "reason", "batch_name", "batch", "message"}`` with status ``terminal``
    (reason: the final state), ``timeout`` (reason ``deadline``) or ``error`` (reason ``poll_errors``
    or ``api_error``).

    :param batch_name: ``batches/...`` to wait for.
    :param gemini_conn_id: the ``gemini`` connection.
    :param poll_interval: seconds between polls.
    :param deadline: Unix time at which to stop waiting (``timeout`` event).
    :param max_consecutive_errors: transient poll failures in a row tolerated before giving up.
    :param cancel_on_kill: cancel the job when a user marks the deferred task failed or clears it
        (Airflow 3.3+, ``BaseTrigger.on_kill``).
    """

    #: Polls in flight at once across every GeminiBatchTrigger of one triggerer (one event loop); the
    #: rest wait their turn. A thousand triggers started together would otherwise send a thousand
    #: requests at the same instant: a burst the API may answer with 429s, and in-flight request state
    #: that outlives the garbage collector's young generations, whose full collections then stall every
    #: trigger of the triggerer for a tenth of a second or more (``make bench``, row 4). A slot is held
    #: for one HTTP attempt, not while the hook waits to retry; waiting for one counts against the
    #: deadline like the poll itself. Triggers with the same limit share one set of slots; set it on the
    #: class (in a plugin or ``airflow_local_settings.py``) or on a subclass.
    max_concurrent_polls: ClassVar[int] = 16

    def __init__(
        self,
        batch_name: str,
        gemini_conn_id: str,
        poll_interval: float,
        deadline: float,
        max_consecutive_errors: int = 5,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.batch_name = batch_name
        self.gemini_conn_id = gemini_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.cancel_on_kill = bool(cancel_on_kill)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_name": self.batch_name,
                "gemini_conn_id": self.gemini_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_consecutive_errors": self.max_consecutive_errors,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _hook(self) -> GeminiBatchHook:
        """A hook whose every request takes one of the triggerer's poll slots (call inside the event loop)."""
        return GeminiBatchHook(gemini_conn_id=self.gemini_conn_id, async_gate=_poll_slots(self.max_concurrent_polls))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        try:
            yield TriggerEvent(await self._wait(hook))  # type: ignore[no-untyped-call]
        finally:
            await hook.aclose()

    async def _wait(self, hook: GeminiBatchHook) -> dict[str, Any]:
        last = Batch(name=self.batch_name)
        last_progress = ""
        errors = 0
        while True:
            try:
                # The hook's own retries honour server delays of minutes: never let them outlast the deadline.
                remaining = max(self.deadline - time.time(), 1.0)
                last = await _within(hook.aget_batch(self.batch_name), remaining)
                errors = 0
            except _PollTimedOut:
                return make_event(
                    "timeout", "deadline", last, f"Deadline passed while polling; last seen {last.progress}"
                )
            except _TRANSIENT_ERRORS as exc:
                errors += 1
                self.log.warning("Poll %d of %s failed: %s", errors, self.batch_name, exc)
                if errors > self.max_consecutive_errors:
                    message = f"{errors} polls in a row failed; last error: {exc}"
                    return make_event("error", "poll_errors", last, message)
            except GeminiBatchError as exc:
                return make_event("error", "api_error", last, str(exc))
            else:
                if last.progress != last_progress:
                    last_progress = last.progress
                    self.log.info("Batch %s: %s", self.batch_name, last_progress)
                if last.state.is_terminal:
                    return make_event("terminal", last.state.short_name.lower(), last, f"Batch {last.progress}")
            remaining = self.deadline - time.time()
            if remaining <= 0:
                return make_event("timeout", "deadline", last, f"Deadline passed while the batch was {last.progress}")
            await asyncio.sleep(min(self.poll_interval, remaining))

    async def on_kill(self) -> None:
        """Cancel the job when a user kills the deferred task (Airflow 3.3+ calls this; restarts don't)."""
        if not self.cancel_on_kill:
            return
        hook = self._hook()
        try:
            await hook.acancel_batch(self.batch_name)
            self.log.warning("Cancelled batch %s because the task was killed", self.batch_name)
        finally:
            await hook.aclose()
