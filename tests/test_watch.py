"""The watch: every poll outcome and clock reading, decided without I/O."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchConnectionError,
    GeminiBatchError,
    GeminiBatchNotFoundError,
    GeminiBatchPermissionError,
    GeminiBatchRateLimitError,
    GeminiBatchServerError,
)
from airflow_provider_gemini_batch.models import Batch
from airflow_provider_gemini_batch.watch import BatchWatch, Finish, PollAgain, WaitOutcome

NAME = "batches/b1"
START = 1_000_000.0


def batch(state: str) -> Batch:
    return Batch.model_validate({"name": NAME, "metadata": {"state": f"BATCH_STATE_{state}", "name": NAME}})


def watch(**kwargs: float) -> BatchWatch:
    kwargs.setdefault("deadline", START + 86_400)
    return BatchWatch(NAME, poll_interval=30.0, jitter=lambda: 1.0, **kwargs)  # type: ignore[arg-type]


def server_error() -> GeminiBatchError:
    return GeminiBatchServerError(503, "UNAVAILABLE", "get batches/b1: overloaded")


def test_a_running_job_is_polled_again_after_the_interval() -> None:
    decision = watch().observe(batch("RUNNING"), START)
    assert isinstance(decision, PollAgain)
    assert decision.delay == 30.0
    assert [line.message for line in decision.log] == ["Batch %s: %s"]


@pytest.mark.parametrize("state", ["SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"])
def test_a_terminal_job_ends_the_wait(state: str) -> None:
    decision = watch().observe(batch(state), START)
    assert isinstance(decision, Finish)
    assert (decision.outcome.kind, decision.outcome.batch.state.short_name) == ("terminal", state)


@pytest.mark.parametrize(
    "error",
    [
        server_error(),
        GeminiBatchRateLimitError(429, "RESOURCE_EXHAUSTED", "quota"),
        GeminiBatchConnectionError("Could not get batches/b1: ReadTimeout"),
    ],
    ids=["5xx", "429", "connection"],
)
def test_transient_errors_back_off_and_never_end_a_day_long_wait_early(error: GeminiBatchError) -> None:
    """Finding 2: six failed polls in a row (2.5 minutes of 503s) used to end the wait and cancel the job."""
    w = watch()
    w.observe(batch("RUNNING"), START)
    delays = []
    now = START
    for _ in range(12):
        decision = w.observe(error, now)
        assert isinstance(decision, PollAgain), "an outage shorter than the limit never ends the wait"
        assert decision.log[0].level == logging.WARNING
        delays.append(decision.delay)
        now += decision.delay
    assert delays[:5] == [30.0, 60.0, 120.0, 240.0, 300.0], "backoff doubles from the interval, capped"
    recovered = w.observe(batch("RUNNING"), now)
    assert isinstance(recovered, PollAgain)
    assert "Reached the service again" in recovered.log[0].message


def test_an_outage_past_its_limit_ends_the_wait_as_outage() -> None:
    w = watch(outage_limit=600.0)
    decisions = [w.observe(server_error(), START + t) for t in (0, 100, 599, 600)]
    assert all(isinstance(d, PollAgain) for d in decisions[:3])
    end = decisions[3]
    assert isinstance(end, Finish)
    assert end.outcome.kind == "outage"
    assert "left running" in end.outcome.message


def test_backoff_never_sleeps_past_the_outage_limit_or_the_deadline() -> None:
    w = watch(outage_limit=100.0, deadline=START + 1000)
    w.observe(server_error(), START)
    w.failures = 8  # Deep into an outage: the raw backoff is the 300 s cap.
    decision = w.observe(server_error(), START + 90)
    assert isinstance(decision, PollAgain)
    assert decision.delay == pytest.approx(10.0)


@pytest.mark.parametrize(
    "error",
    [
        GeminiBatchPermissionError(403, "PERMISSION_DENIED", "denied"),
        GeminiBatchNotFoundError(404, "NOT_FOUND", "no such batch"),
        GeminiBatchError("Connection 'x' has no API key"),
    ],
    ids=["403", "404", "config"],
)
def test_a_permanent_error_ends_the_wait_at_once(error: GeminiBatchError) -> None:
    decision = watch().observe(error, START)
    assert isinstance(decision, Finish)
    assert decision.outcome.kind == "error"
    assert str(error) in decision.outcome.message


def test_the_deadline_ends_the_wait_as_timeout_with_the_last_state() -> None:
    w = watch(deadline=START + 50)
    w.observe(batch("RUNNING"), START)
    assert isinstance(w.observe(batch("RUNNING"), START + 30), PollAgain)
    end = w.observe(batch("RUNNING"), START + 50)
    assert isinstance(end, Finish)
    assert end.outcome.kind == "timeout"
    assert "while the batch was RUNNING" in end.outcome.message


def test_a_terminal_state_wins_over_the_deadline() -> None:
    end = watch(deadline=START).observe(batch("SUCCEEDED"), START + 10)
    assert isinstance(end, Finish)
    assert end.outcome.kind == "terminal"


@pytest.mark.parametrize("kind", ["terminal", "timeout", "outage", "error"])
def test_an_outcome_survives_the_trip_through_a_trigger_event(kind: str) -> None:
    outcome = WaitOutcome(kind, batch("SUCCEEDED" if kind == "terminal" else "RUNNING"), "why")  # type: ignore[arg-type]
    back = WaitOutcome.from_event(outcome.as_event())
    assert (back.kind, back.batch.name, back.batch.state, back.message) == (
        kind,
        NAME,
        outcome.batch.state,
        "why",
    )


@pytest.mark.parametrize("event", [None, {}, {"status": "done", "batch_name": NAME}, {"status": "terminal"}])
def test_an_invalid_event_is_reported_as_a_bug(event: object) -> None:
    with pytest.raises(GeminiBatchError, match="trigger event"):
        WaitOutcome.from_event(event)


def test_an_event_of_the_previous_release_still_reads_as_an_outage() -> None:
    event = {"status": "error", "reason": "poll_errors", "batch_name": NAME, "batch": {"name": NAME}, "message": "m"}
    assert WaitOutcome.from_event(event).kind == "outage"
