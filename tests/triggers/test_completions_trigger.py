"""GeminiBatchCompletedTrigger against the emulator: one event per finished job, never twice, never lost."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from airflow.triggers.base import BaseEventTrigger

from airflow_provider_gemini_batch.assets import WATERMARK_KEY, CompletedBatch, gemini_batch_completed, handled_key
from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.triggers import GeminiBatchCompletedTrigger, watched_gemini_batch_completed
from airflow_provider_gemini_batch.triggers import completions as trigger_module

REQUEST = {"key": "k", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}


def submit(count: int = 1) -> list[str]:
    hook = GeminiBatchHook()
    return [hook.create_batch("gemini-2.5-flash", requests=[REQUEST]).name for _ in range(count)]


class FakeStateStore:
    """Stands in for Airflow 3.3's asset state store accessor (``aget`` / ``aset`` of JSON values)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        json.dumps(value)  # The store keeps JSON.
        self.values[key] = value


class Watcher:
    """Runs a trigger as the triggerer does, collecting its events until stopped."""

    def __init__(self, trigger: GeminiBatchCompletedTrigger) -> None:
        self.trigger = trigger
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._consume())

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    @property
    def announced(self) -> list[str]:
        return [event["batch"] for event in self.events]

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert not self.task.done(), f"the watcher stopped: {self.task!r}"
            assert time.monotonic() < deadline, f"timed out; announced {self.announced}"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def watcher(store: Any = None, **kwargs: Any) -> Watcher:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("grace", 0.0)  # The emulator's jobs end the moment they are created.
    trigger = GeminiBatchCompletedTrigger(**kwargs)
    trigger.asset_state_store = store  # type: ignore[assignment]  # As the 3.3 triggerer sets it.
    return Watcher(trigger)


def test_serializes_primitives_only_stably_and_without_the_key(gemini_connection: EmulatorHandle) -> None:
    path, kwargs = GeminiBatchCompletedTrigger().serialize()
    assert path == "airflow_provider_gemini_batch.triggers.completions.GeminiBatchCompletedTrigger"
    assert kwargs == {
        "gemini_conn_id": "gemini_default",
        "poll_interval": 300.0,
        "lookback": 3600.0,
        "states": [
            "BATCH_STATE_CANCELLED",
            "BATCH_STATE_EXPIRED",
            "BATCH_STATE_FAILED",
            "BATCH_STATE_SUCCEEDED",
        ],
        "walk_timeout": None,
        "grace": 10.0,
    }
    assert gemini_connection.api_key not in json.dumps(kwargs)
    again = GeminiBatchCompletedTrigger(
        states=["SUCCEEDED", "FAILED", "EXPIRED", "CANCELLED"], lookback=timedelta(hours=1)
    )
    assert again.serialize() == (path, kwargs), "equal arguments, equal kwargs: Airflow dedupes watchers on them"
    assert GeminiBatchCompletedTrigger(**kwargs).serialize() == (path, kwargs)
    assert BaseEventTrigger.hash(*again.serialize()) == BaseEventTrigger.hash(path, kwargs)


def test_states_must_be_final() -> None:
    with pytest.raises(ValueError, match="final states"):
        GeminiBatchCompletedTrigger(states=["RUNNING"])


async def test_each_finished_job_is_announced_once_across_many_walks(gemini_connection: EmulatorHandle) -> None:
    gemini_connection.control.configure(running_seconds=0.3)
    names = submit(3)
    running = watcher()
    try:
        await running.until(lambda: len(running.events) == 3)
        await asyncio.sleep(0.5)  # Ten more walks see the same finished jobs.
    finally:
        await running.stop()
    assert sorted(running.announced) == sorted(names)
    expected = CompletedBatch(batch=names[0], state="BATCH_STATE_SUCCEEDED", source="poll").as_extra()
    assert running.events[running.announced.index(names[0])] == expected
    lists = [r for r in gemini_connection.control.requests() if r["method"] == "GET" and r["path"].endswith("/batches")]
    assert not [r for r in gemini_connection.control.requests() if "/batches/" in r["path"] and r["method"] == "GET"], (
        "no job is polled one by one: one list walk per interval"
    )
    assert len(lists) >= 10


async def test_failed_jobs_carry_their_error_and_a_states_filter_holds(gemini_connection: EmulatorHandle) -> None:
    (ok,) = submit()
    (bad,) = submit()
    gemini_connection.control.set_state(bad, "FAILED", message="quota gone")
    running = watcher(states=["BATCH_STATE_FAILED"])
    try:
        await running.until(lambda: len(running.events) == 1)
        await asyncio.sleep(0.2)
    finally:
        await running.stop()
    assert running.events == [
        CompletedBatch(batch=bad, state="BATCH_STATE_FAILED", source="poll", error="quota gone").as_extra()
    ]
    assert ok not in running.announced


async def test_jobs_finished_before_the_lookback_are_not_announced(gemini_connection: EmulatorHandle) -> None:
    (old,) = submit()  # Finishes at once (running_seconds is 0).
    await asyncio.sleep(0.5)
    running = watcher(lookback=0.2)
    try:
        await asyncio.sleep(0.3)
        (new,) = submit()
        await running.until(lambda: new in running.announced)
    finally:
        await running.stop()
    assert running.announced == [new]
    assert old not in running.announced


async def test_a_job_already_announced_by_the_webhook_is_skipped_and_announced_jobs_are_marked(
    gemini_connection: EmulatorHandle,
) -> None:
    by_webhook, missed = submit(2)
    store = FakeStateStore()
    store.values[handled_key(by_webhook)] = {"source": "webhook"}
    running = watcher(store)
    try:
        await running.until(lambda: len(running.events) == 1)
        await asyncio.sleep(0.2)
    finally:
        await running.stop()
    assert running.announced == [missed]
    assert store.values[handled_key(missed)]["source"] == "poll"
    assert store.values[WATERMARK_KEY]["time"]


async def test_the_watermark_survives_a_restart(gemini_connection: EmulatorHandle) -> None:
    store = FakeStateStore()
    (before,) = submit()
    first = watcher(store)
    await first.until(lambda: first.announced == [before])
    await first.stop()  # A triggerer restart ...
    (during,) = submit()  # ... during which a job finishes, and its webhook is lost.
    store.values.pop(handled_key(before))  # Even without the marks, the watermark alone holds.
    await asyncio.sleep(0.3)
    second = watcher(store, lookback=0.0)
    try:
        await second.until(lambda: during in second.announced)
        await asyncio.sleep(0.3)
    finally:
        await second.stop()
    assert second.announced == [during], "the stored watermark, not the lookback, decides"


async def test_without_a_state_store_a_restart_announces_again_within_the_lookback(
    gemini_connection: EmulatorHandle,
) -> None:
    (name,) = submit()
    first = watcher()
    await first.until(lambda: first.announced == [name])
    await first.stop()
    second = watcher()
    try:
        await second.until(lambda: second.announced == [name])
    finally:
        await second.stop()


async def test_an_outage_neither_stops_the_watcher_nor_loses_a_job(no_retry_connection: EmulatorHandle) -> None:
    control = no_retry_connection.control
    running = watcher()
    try:
        await asyncio.sleep(0.2)
        control.inject_fault("status", status=503, method="GET", path_contains="batches", seconds=1.0)
        (name,) = submit()  # Finishes during the outage.
        await asyncio.sleep(0.5)
        assert running.events == [], "nothing to announce while the list fails"
        await running.until(lambda: running.announced == [name])
        await asyncio.sleep(0.2)
    finally:
        await running.stop()
    assert running.announced == [name]
    refused = [r for r in control.requests() if r["status"] == 503]
    assert len(refused) >= 3, "the walk was tried again at each interval"


async def test_a_walk_is_cut_at_its_timeout_when_the_service_asks_to_wait(
    gemini_connection: EmulatorHandle,
) -> None:
    (name,) = submit()
    gemini_connection.control.inject_fault("status", status=429, count=1, retry_delay="30s", method="GET")
    started = time.monotonic()
    running = watcher(walk_timeout=0.5)
    try:
        await running.until(lambda: running.announced == [name])
    finally:
        await running.stop()
    assert time.monotonic() - started < 5, "the 30 s RetryInfo delay was cut at the walk's timeout"


async def test_a_store_that_cannot_be_read_delays_the_look_without_stopping(gemini_connection: EmulatorHandle) -> None:
    class FlakyStore(FakeStateStore):
        failures = 3

        async def aget(self, key: str, default: Any = None) -> Any:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("api-server unreachable")
            return await super().aget(key, default)

    (name,) = submit()
    store = FlakyStore()
    running = watcher(store)
    try:
        await running.until(lambda: running.announced == [name])
    finally:
        await running.stop()
    assert store.failures == 0


async def test_every_page_is_read_in_one_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    def job(name: str) -> dict[str, Any]:
        ended = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()  # Within the lookback.
        metadata = {"name": name, "state": "BATCH_STATE_SUCCEEDED", "endTime": ended}
        return {"name": name, "metadata": metadata, "done": True}

    pages = {
        None: {"operations": [job("batches/a"), job("batches/b")], "nextPageToken": "p2"},
        "p2": {"operations": [job("batches/c")]},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("pageToken")])

    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps({"conn_type": "gemini", "password": "k"}))
    monkeypatch.setattr(
        trigger_module,
        "GeminiBatchHook",
        functools.partial(GeminiBatchHook, async_transport=httpx.MockTransport(answer)),
    )
    running = watcher()
    try:
        await running.until(lambda: len(running.events) == 3)
    finally:
        await running.stop()
    assert running.announced == ["batches/a", "batches/b", "batches/c"]


def test_a_dag_scheduled_on_the_watched_asset_serializes_and_its_trigger_comes_back() -> None:
    from airflow.sdk import DAG

    try:
        from airflow.serialization.serialized_objects import DagSerialization as Serializer
    except ImportError:  # Airflow < 3.1
        from airflow.serialization.serialized_objects import SerializedDAG as Serializer

    watched = watched_gemini_batch_completed("gemini_default", poll_interval=60)
    completed = gemini_batch_completed("gemini_default")
    assert (watched.name, watched.uri, watched.group) == (completed.name, completed.uri, completed.group)
    with DAG("results_on_completion", schedule=[watched]) as dag:
        pass
    serialized = json.loads(json.dumps(Serializer.to_dict(dag)))  # As stored in the metadata DB.
    restored = Serializer.from_dict(serialized)
    ((_, asset),) = restored.timetable.asset_condition.iter_assets()
    assert (asset.name, asset.uri) == (completed.name, completed.uri)
    (watcher_,) = asset.watchers
    trigger = watched.watchers[0].trigger
    assert watcher_.trigger == dict(zip(("classpath", "kwargs"), trigger.serialize(), strict=True))
    recreated = GeminiBatchCompletedTrigger(**watcher_.trigger["kwargs"])  # As the triggerer builds it.
    assert recreated.serialize() == trigger.serialize()
    assert recreated.poll_interval == 60.0


async def test_the_user_metadata_of_the_jobs_webhook_config_travels_with_the_event(
    gemini_connection: EmulatorHandle,
) -> None:
    config = {"uris": ["http://127.0.0.1:9/unreachable"], "user_metadata": {"run": "nightly"}}
    job = GeminiBatchHook().create_batch(
        "gemini-2.5-flash", requests=[REQUEST], extra_batch_fields={"webhookConfig": config}
    )
    running = watcher()
    try:
        await running.until(lambda: running.announced == [job.name])
    finally:
        await running.stop()
    assert running.events[0]["user_metadata"] == {"run": "nightly"}


async def test_a_store_shared_by_several_other_assets_leaves_the_watermark_in_memory(
    gemini_connection: EmulatorHandle,
) -> None:
    from airflow.sdk import Asset

    try:
        from airflow.sdk.execution_time.context import AssetStateStoreAccessors
    except ImportError:
        pytest.skip("Airflow < 3.3 has no asset state store")
    (name,) = submit()
    store = AssetStateStoreAccessors(inlets=[Asset(name="one", uri="x://one"), Asset(name="two", uri="x://two")])
    running = watcher(store)
    try:
        await running.until(lambda: running.announced == [name])
    finally:
        await running.stop()


class CorruptWatermarkStore(FakeStateStore):
    """A store whose saved watermark no longer parses as JSON (Airflow's accessor raises JSONDecodeError)."""

    async def aget(self, key: str, default: Any = None) -> Any:
        if key == WATERMARK_KEY and WATERMARK_KEY not in self.values:
            raise json.JSONDecodeError("Expecting value", "{not json", 0)
        return await super().aget(key, default)


async def test_a_corrupt_stored_watermark_starts_afresh_and_keeps_using_the_store(
    gemini_connection: EmulatorHandle,
) -> None:
    (name,) = submit()
    store = CorruptWatermarkStore()
    running = watcher(store)
    try:
        await running.until(lambda: running.announced == [name])
    finally:
        await running.stop()
    assert store.values[handled_key(name)]["source"] == "poll", "the store is still the one marking jobs"
    assert store.values[WATERMARK_KEY]["time"]
