"""``GeminiBatchSensor``: each way a wait ends, deferred and not, and its one interval, ``poke_interval``."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import PokeReturnValue, TaskDeferred

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchFailed, GeminiBatchPartialFailure, GeminiBatchTimeout
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.sensors import GeminiBatchSensor
from airflow_provider_gemini_batch.settings import DEFAULT_POLL_INTERVAL
from airflow_provider_gemini_batch.triggers import GeminiBatchTrigger
from tests.airflow_flow import requests, run_task


def test_poll_interval_is_refused_with_the_name_to_use() -> None:
    with pytest.raises(TypeError, match="poke_interval"):
        GeminiBatchSensor(task_id="wait", batch_name="batches/b1", poll_interval=5)


def test_the_default_interval_is_the_providers() -> None:
    assert GeminiBatchSensor(task_id="wait", batch_name="batches/b1").poke_interval == DEFAULT_POLL_INTERVAL


def test_the_deferred_wait_polls_at_poke_interval(gemini_connection: EmulatorHandle) -> None:
    gemini_connection.control.configure(running_seconds=60)
    name = (
        GeminiBatchHook()
        .create_batch(
            "gemini-2.5-flash", requests=[{"key": "1", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}]
        )
        .name
    )
    sensor = GeminiBatchSensor(task_id="wait", batch_name=name, poke_interval=7)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, GeminiBatchTrigger)
    assert trigger.poll_interval == 7


@pytest.fixture
def emulator(gemini_connection: EmulatorHandle) -> EmulatorHandle:
    gemini_connection.control.configure(running_seconds=0.3)
    return gemini_connection


class TestSensor:
    @pytest.fixture
    def batch_name(self, emulator: EmulatorHandle) -> str:
        hook = GeminiBatchHook()
        return hook.create_batch("gemini-2.5-flash", requests=requests(4, failing=1)).name

    def sensor(self, name: str, deferrable: bool, **kwargs: Any) -> GeminiBatchSensor:
        return GeminiBatchSensor(task_id="wait", batch_name=name, deferrable=deferrable, poke_interval=0.1, **kwargs)

    def test_reschedule_mode_pokes_once_a_failed_poll_is_not_yet_and_a_finished_job_is_done(
        self, batch_name: str, no_retry_connection: EmulatorHandle
    ) -> None:
        emulator = no_retry_connection
        sensor = self.sensor(batch_name, False, mode="reschedule")
        emulator.control.set_state(batch_name, "RUNNING")
        assert sensor.poke({}) is False
        emulator.control.inject_fault("status", status=503, count=10, method="GET")
        assert sensor.poke({}) is False, "a transient error is 'not yet', not a failure"
        emulator.control.clear_faults()
        emulator.control.set_state(batch_name, "SUCCEEDED")
        done = sensor.poke({})
        assert isinstance(done, PokeReturnValue)
        assert done.is_done
        assert done.xcom_value["state"] == "BATCH_STATE_SUCCEEDED"

    def test_returns_the_summary(self, batch_name: str, deferrable: bool) -> None:
        summary, deferred = run_task(self.sensor(batch_name, deferrable))
        assert deferred == deferrable
        assert summary["state"] == "BATCH_STATE_SUCCEEDED"
        assert (summary["succeeded_count"], summary["failed_count"]) == (3, 1)

    def test_applies_the_partial_failure_policy(self, batch_name: str, deferrable: bool) -> None:
        with pytest.raises(GeminiBatchPartialFailure):
            run_task(self.sensor(batch_name, deferrable, max_failed_requests=0))

    def test_a_failed_job_raises(self, emulator: EmulatorHandle, batch_name: str, deferrable: bool) -> None:
        emulator.control.set_state(batch_name, "FAILED", "input file malformed")
        with pytest.raises(GeminiBatchFailed, match="input file malformed"):
            run_task(self.sensor(batch_name, deferrable))

    def test_deferred_deadline_leaves_the_job_by_default(self, emulator: EmulatorHandle) -> None:
        emulator.control.configure(running_seconds=60)
        name = GeminiBatchHook().create_batch("gemini-2.5-flash", requests=requests(1)).name
        with pytest.raises(GeminiBatchTimeout):
            run_task(self.sensor(name, True, timeout=0.3))
        assert emulator.control.batches()[0]["state"] == "BATCH_STATE_RUNNING"
