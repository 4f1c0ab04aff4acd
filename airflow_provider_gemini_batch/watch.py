"""The watch over one batch job: what each poll means, decided once and without I/O.

Every wait in the provider (the trigger, ``GeminiBatchHook.wait_for_batch`` behind the submit
operator's ``deferrable=False``, the sensor's poke mode and the cancel operator's wait) is a thin
loop around :class:`BatchWatch`: poll, hand the outcome and the clock to :meth:`BatchWatch.observe`,
then sleep or finish as it says. The loops differ only in ``await`` and where they sleep, so they
cannot drift apart.

What a poll outcome means:

- a job in a terminal state ends the wait (``terminal``);
- the deadline passing ends it (``timeout``);
- a transient error (no connection, a timeout, 408/429/5xx, an unreadable reply) says nothing
  about the job, only about the road to it: keep polling with a capped, jittered backoff, and end
  the wait (``outage``) only when the failures have lasted ``outage_limit`` seconds. The job is left
  alone: a retry of the task reconnects to it;
- any other error (401/403/404, invalid argument, a broken connection setting) is permanent and
  ends the wait at once (``error``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchConnectionError,
    GeminiBatchError,
    GeminiBatchRateLimitError,
    GeminiBatchServerError,
)
from airflow_provider_gemini_batch.models import Batch
from airflow_provider_gemini_batch.settings import DEFAULT_OUTAGE_LIMIT

__all__ = [
    "BatchWatch",
    "Decision",
    "Finish",
    "LogLine",
    "PollAgain",
    "WaitOutcome",
]

#: The longest pause between polls while the service is unreachable.
MAX_OUTAGE_BACKOFF = 300.0

# Errors that say nothing about the job, only about the road to it.
TRANSIENT_ERRORS = (GeminiBatchConnectionError, GeminiBatchServerError, GeminiBatchRateLimitError)

OutcomeKind = Literal["terminal", "timeout", "outage", "error"]
# Status words of the trigger event; "outage" travels as status "error" with reason "outage", so
# that an event persisted by an older release still reads.
_EVENT_STATUS: dict[OutcomeKind, str] = {
    "terminal": "terminal",
    "timeout": "timeout",
    "outage": "error",
    "error": "error",
}


@dataclass(frozen=True)
class LogLine:
    """A line the loop should log: ``logger.log(level, message, *args)``."""

    level: int
    message: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class WaitOutcome:
    """How a wait ended, with the last state seen of the job.

    :param kind: ``terminal``, ``timeout`` (the deadline passed), ``outage`` (the service stayed
        unreachable for the outage limit) or ``error`` (a permanent error).
    :param batch: the job as last seen (only its name when it was never seen).
    :param message: what happened, for the task log and the exception.
    """

    kind: OutcomeKind
    batch: Batch
    message: str

    def as_event(self) -> dict[str, Any]:
        """The trigger event: JSON primitives only, never results."""
        reason = self.batch.state.short_name.lower() if self.kind == "terminal" else self.kind
        if self.kind == "timeout":
            reason = "deadline"
        elif self.kind == "error":
            reason = "api_error"
        return {
            "status": _EVENT_STATUS[self.kind],
            "reason": reason,
            "batch_name": self.batch.name,
            "batch": self.batch.model_dump(mode="json", exclude={"inlined_responses"}),
            "message": self.message,
        }

    @classmethod
    def from_event(cls, event: object) -> WaitOutcome:
        """Read a trigger event back; an event that isn't one is a bug and says so."""
        name = event.get("batch_name") if isinstance(event, Mapping) else None
        if not isinstance(event, Mapping) or event.get("status") not in ("terminal", "timeout", "error") or not name:
            raise GeminiBatchError(
                f"Received an invalid trigger event: {str(event)[:200]!r}. This is a bug; please report it"
            )
        assert isinstance(name, str)
        batch = Batch.model_validate(event.get("batch") or {"name": name})
        kind: OutcomeKind
        if event["status"] == "terminal":
            kind = "terminal"
        elif event["status"] == "timeout":
            kind = "timeout"
        else:  # "poll_errors" is what releases before 0.2 called an outage.
            kind = "outage" if event.get("reason") in ("outage", "poll_errors") else "error"
        return cls(kind, batch, str(event.get("message") or ""))


@dataclass(frozen=True)
class PollAgain:
    """Keep waiting: poll again after ``delay`` seconds."""

    delay: float
    log: tuple[LogLine, ...] = ()


@dataclass(frozen=True)
class Finish:
    """The wait is over."""

    outcome: WaitOutcome
    log: tuple[LogLine, ...] = ()


Decision = PollAgain | Finish


@dataclass
class BatchWatch:
    """Decide, from each poll's outcome and the clock, whether to keep waiting, when, and how it ends.

    :param batch_name: the job watched.
    :param poll_interval: seconds between polls while the job runs.
    :param deadline: Unix time at which the wait ends with ``timeout``.
    :param outage_limit: seconds of failing polls in a row after which the wait ends with ``outage``.
    :param jitter: returns a factor in [0.5, 1.0] applied to outage backoffs (injected for tests).
    """

    batch_name: str
    poll_interval: float
    deadline: float
    outage_limit: float = DEFAULT_OUTAGE_LIMIT
    jitter: Callable[[], float] = field(default=lambda: random.uniform(0.5, 1.0), repr=False)
    last: Batch = field(init=False)
    failures: int = field(default=0, init=False)
    failing_since: float | None = field(default=None, init=False)
    _progress: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self.last = Batch(name=self.batch_name)

    def observe(self, outcome: Batch | GeminiBatchError, now: float) -> Decision:
        """Take one poll's outcome (the job, or the error the poll raised) at Unix time ``now``."""
        if isinstance(outcome, Batch):
            return self._seen(outcome, now)
        if isinstance(outcome, TRANSIENT_ERRORS):
            return self._failed(outcome, now)
        message = f"Waiting for batch {self.batch_name} failed: {outcome}"
        return Finish(WaitOutcome("error", self.last, message), (LogLine(logging.ERROR, "%s", (message,)),))

    def _seen(self, batch: Batch, now: float) -> Decision:
        lines: list[LogLine] = []
        if self.failures:
            outage = now - (self.failing_since or now)
            lines.append(
                LogLine(
                    logging.INFO,
                    "Reached the service again after %d failed polls over %.0f s",
                    (self.failures, outage),
                )
            )
            self.failures, self.failing_since = 0, None
        self.last = batch
        if batch.progress != self._progress:
            self._progress = batch.progress
            lines.append(LogLine(logging.INFO, "Batch %s: %s", (batch.name, batch.progress)))
        if batch.state.is_terminal:
            return Finish(WaitOutcome("terminal", batch, f"Batch {batch.progress}"), tuple(lines))
        if now >= self.deadline:
            return Finish(self._timeout(now), tuple(lines))
        return PollAgain(min(self.poll_interval, self.deadline - now), tuple(lines))

    def _failed(self, error: GeminiBatchError, now: float) -> Decision:
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = now
        outage = now - self.failing_since
        if now >= self.deadline:
            return Finish(self._timeout(now))
        if outage >= self.outage_limit:
            message = (
                f"The service could not be reached about batch {self.batch_name} for {outage:.0f} s "
                f"({self.failures} polls failed; outage_limit is {self.outage_limit:.0f} s); last error: {error}. "
                "The job was left running: a retry of the task reconnects to it"
            )
            return Finish(WaitOutcome("outage", self.last, message), (LogLine(logging.ERROR, "%s", (message,)),))
        backoff = min(MAX_OUTAGE_BACKOFF, self.poll_interval * 2 ** (self.failures - 1)) * self.jitter()
        delay = max(0.0, min(backoff, self.deadline - now, self.failing_since + self.outage_limit - now))
        line = LogLine(
            logging.WARNING,
            "Poll %d of batch %s failed (%s); the job is not affected, polling again in %.0f s",
            (self.failures, self.batch_name, error, delay),
        )
        return PollAgain(delay, (line,))

    def _timeout(self, now: float) -> WaitOutcome:
        state = self.last.progress if self._progress else "not yet seen"
        return WaitOutcome("timeout", self.last, f"the deadline passed while the batch was {state}")
