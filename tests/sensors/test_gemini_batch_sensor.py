"""``GeminiBatchSensor`` has one interval, Airflow's own ``poke_interval``, in every mode."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.sensors import GeminiBatchSensor
from airflow_provider_gemini_batch.settings import DEFAULT_POLL_INTERVAL
from airflow_provider_gemini_batch.triggers import GeminiBatchTrigger


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
