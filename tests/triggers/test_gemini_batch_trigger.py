"""GeminiBatchTrigger against the emulator: one event, primitives only, errors tolerated, never creates."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.triggers import GeminiBatchTrigger
from airflow_provider_gemini_batch.triggers import gemini_batch as trigger_module


@pytest.fixture
def running_batch(no_retry_connection: EmulatorHandle) -> str:
    """A job that runs for 0.6 s; the connection gives up after one try so polls fail fast."""
    no_retry_connection.control.configure(running_seconds=0.6)
    request = {"key": "k", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}
    return GeminiBatchHook().create_batch("gemini-2.5-flash", requests=[request]).name


def trigger(name: str, **kwargs: Any) -> GeminiBatchTrigger:
    kwargs.setdefault("deadline", time.time() + 30)
    return GeminiBatchTrigger(batch_name=name, gemini_conn_id="gemini_default", poll_interval=0.1, **kwargs)


async def events(trigger: GeminiBatchTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def test_serializes_only_primitives_and_no_secret(running_batch: str, gemini_connection: EmulatorHandle) -> None:
    path, kwargs = trigger(running_batch, deadline=1234.5).serialize()
    assert path == "airflow_provider_gemini_batch.triggers.gemini_batch.GeminiBatchTrigger"
    assert all(isinstance(value, (str, int, float, bool)) for value in kwargs.values())
    assert kwargs["deadline"] == 1234.5
    assert gemini_connection.api_key not in json.dumps(kwargs)


async def test_emits_exactly_one_terminal_event(running_batch: str) -> None:
    (event,) = await events(trigger(running_batch))
    assert (event["status"], event["reason"], event["batch_name"]) == ("terminal", "succeeded", running_batch)
    assert event["batch"]["state"] == "BATCH_STATE_SUCCEEDED"
    json.dumps(event)  # Events are stored in the metadata DB: JSON only.


async def test_transient_errors_are_tolerated(running_batch: str, gemini_connection: EmulatorHandle) -> None:
    gemini_connection.control.inject_fault("status", status=503, count=3, method="GET")
    (event,) = await events(trigger(running_batch))
    assert event["status"] == "terminal"


async def test_an_outage_past_its_limit_ends_the_wait_and_leaves_the_job_alone(
    running_batch: str, gemini_connection: EmulatorHandle
) -> None:
    gemini_connection.control.configure(running_seconds=60)
    job = GeminiBatchHook().create_batch("gemini-2.5-flash", requests=[{"contents": [{"parts": [{"text": "x"}]}]}])
    gemini_connection.control.inject_fault("status", status=500, method="GET", seconds=5)
    (event,) = await events(trigger(job.name, outage_limit=1.0))
    assert (event["status"], event["reason"]) == ("error", "outage")
    assert "The job was left running" in event["message"]
    states = {batch["name"]: batch["state"] for batch in gemini_connection.control.batches()}
    assert states[job.name] == "BATCH_STATE_RUNNING"
    assert not [r for r in gemini_connection.control.requests() if r["path"].endswith(":cancel")]


async def test_a_permanent_error_ends_the_wait_at_once(running_batch: str, gemini_connection: EmulatorHandle) -> None:
    gemini_connection.control.inject_fault("status", status=403, count=1, method="GET")
    started = time.monotonic()
    (event,) = await events(trigger(running_batch))
    assert (event["status"], event["reason"]) == ("error", "api_error")
    assert "HTTP 403" in event["message"]
    assert time.monotonic() - started < 2


async def test_deadline_emits_timeout(running_batch: str, gemini_connection: EmulatorHandle) -> None:
    gemini_connection.control.configure(running_seconds=60)
    name = (
        GeminiBatchHook().create_batch("gemini-2.5-flash", requests=[{"contents": [{"parts": [{"text": "x"}]}]}]).name
    )
    (event,) = await events(trigger(name, deadline=time.time() + 0.3))
    assert (event["status"], event["reason"]) == ("timeout", "deadline")


async def test_recreated_from_serialize_keeps_the_absolute_deadline(
    running_batch: str, gemini_connection: EmulatorHandle
) -> None:
    gemini_connection.control.configure(running_seconds=60)
    name = (
        GeminiBatchHook().create_batch("gemini-2.5-flash", requests=[{"contents": [{"parts": [{"text": "x"}]}]}]).name
    )
    first = trigger(name, deadline=time.time() + 0.8)
    task = asyncio.ensure_future(events(first))
    await asyncio.sleep(0.3)
    task.cancel()  # A triggerer restart: the trigger is dropped mid-wait ...
    _, kwargs = first.serialize()
    started = time.time()
    (event,) = await events(GeminiBatchTrigger(**kwargs))  # ... and re-created from its kwargs.
    assert event["reason"] == "deadline"
    assert time.time() - started < 0.75, "the deadline did not restart"


async def test_two_triggers_on_one_batch_never_create(running_batch: str, gemini_connection: EmulatorHandle) -> None:
    results = await asyncio.gather(events(trigger(running_batch)), events(trigger(running_batch)))
    assert [len(r) for r in results] == [1, 1]
    assert gemini_connection.control.created_count() == 1


async def test_unknown_state_is_waited_through(running_batch: str, gemini_connection: EmulatorHandle) -> None:
    gemini_connection.control.set_state(running_batch, "BATCH_STATE_PAUSED_FOR_MAINTENANCE")
    task = asyncio.ensure_future(events(trigger(running_batch)))
    await asyncio.sleep(0.4)
    assert not task.done(), "an unknown state is not terminal"
    gemini_connection.control.set_state(running_batch, "SUCCEEDED")
    (event,) = await asyncio.wait_for(task, 5)
    assert event["reason"] == "succeeded"


async def test_on_kill_cancels_the_job(running_batch: str, gemini_connection: EmulatorHandle) -> None:
    gemini_connection.control.configure(running_seconds=60)
    await trigger(running_batch, cancel_on_kill=True).on_kill()
    assert gemini_connection.control.batches()[0]["state"] == "BATCH_STATE_CANCELLED"
    await trigger(running_batch, cancel_on_kill=False).on_kill()  # Switched off: no request at all.


async def test_server_requested_delays_never_outlast_the_deadline(
    running_batch: str, gemini_connection: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "gemini", "host": gemini_connection.base_url, "password": gemini_connection.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))  # Retries on, as by default.
    gemini_connection.control.inject_fault("status", status=429, count=5, retry_delay="30s", method="GET")
    started = time.time()
    (event,) = await events(trigger(running_batch, deadline=time.time() + 1.0))
    assert event["reason"] == "deadline"
    assert time.time() - started < 5, "the 30 s RetryInfo delay was cut at the deadline"


async def test_a_cancelled_trigger_stops(running_batch: str, gemini_connection: EmulatorHandle) -> None:
    gemini_connection.control.configure(running_seconds=60)
    tasks = [asyncio.ensure_future(events(trigger(running_batch))) for _ in range(50)]
    await asyncio.sleep(0.35)  # Mid-poll and mid-sleep, as the triggerer's cancel finds them.
    for task in tasks:
        task.cancel()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)


class _SlowService(httpx.AsyncBaseTransport):
    """Answers every poll after 20 ms, RUNNING twice then SUCCEEDED, and records the most polls in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self.polls: dict[str, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.02)
        finally:
            self.in_flight -= 1
        name = request.url.path.split("/v1beta/", 1)[1]
        self.polls[name] = self.polls.get(name, 0) + 1
        state = "BATCH_STATE_RUNNING" if self.polls[name] <= 2 else "BATCH_STATE_SUCCEEDED"
        return httpx.Response(200, json={"name": name, "metadata": {"name": name, "state": state}})


async def test_polls_in_flight_are_capped_per_triggerer(monkeypatch: pytest.MonkeyPatch) -> None:
    service = _SlowService()
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps({"conn_type": "gemini", "password": "k"}))
    monkeypatch.setenv("AIRFLOW__GEMINI_BATCH__MAX_CONCURRENT_POLLS", "3")
    monkeypatch.setattr(trigger_module, "GeminiBatchHook", functools.partial(GeminiBatchHook, async_transport=service))
    names = [f"batches/b{i}" for i in range(30)]
    results = await asyncio.wait_for(asyncio.gather(*(events(trigger(name)) for name in names)), 20)
    assert [event["reason"] for (event,) in results] == ["succeeded"] * 30
    assert service.polls == dict.fromkeys(names, 3)
    assert service.most_in_flight == 3, "30 triggers polling at once never had more than 3 polls in flight"


async def test_a_poll_waiting_to_retry_gives_its_slot_to_others(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[tuple[str, int]] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        name = request.url.path.split("/v1beta/", 1)[1]
        status = 429 if (name, 429) not in order and name == "batches/first" else 200
        order.append((name, status))
        if status == 429:
            return httpx.Response(429, headers={"retry-after": "1"}, json={"error": {"code": 429, "message": "slow"}})
        return httpx.Response(200, json={"name": name, "metadata": {"name": name, "state": "BATCH_STATE_SUCCEEDED"}})

    transport = httpx.MockTransport(answer)
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps({"conn_type": "gemini", "password": "k"}))
    monkeypatch.setenv("AIRFLOW__GEMINI_BATCH__MAX_CONCURRENT_POLLS", "1")
    monkeypatch.setattr(
        trigger_module, "GeminiBatchHook", functools.partial(GeminiBatchHook, async_transport=transport)
    )
    first = asyncio.ensure_future(events(trigger("batches/first")))
    await asyncio.sleep(0)  # the first trigger polls first
    results = await asyncio.wait_for(asyncio.gather(first, events(trigger("batches/second"))), 10)
    assert [event["reason"] for (event,) in results] == ["succeeded", "succeeded"]
    assert order == [("batches/first", 429), ("batches/second", 200), ("batches/first", 200)]
