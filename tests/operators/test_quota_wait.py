"""Waiting out quota: a create refused 429 RESOURCE_EXHAUSTED made no job, so the submit operator
defers (holding no worker slot), honours the service's ``RetryInfo`` delay, and creates once quota frees.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchRateLimitError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator
from tests.airflow_flow import RecordingTaskInstance, TaskStateStore, first_event

MODEL = "gemini-2.5-flash"
CREATE = f"POST /v1beta/models/{MODEL}:batchGenerateContent"


def _requests(text: str) -> list[dict[str, Any]]:
    return [{"key": text, "request": {"contents": [{"parts": [{"text": text}]}]}}]


def submit(task_id: str, **kwargs: Any) -> GeminiSubmitBatchOperator:
    kwargs.setdefault("poll_interval", 0.1)
    return GeminiSubmitBatchOperator(task_id=task_id, model=MODEL, requests=_requests(task_id), **kwargs)


def context(task_id: str, map_index: int = -1) -> dict[str, Any]:
    ti = RecordingTaskInstance()
    ti.task_id, ti.map_index = task_id, map_index
    return {"ti": ti, "task_state_store": TaskStateStore()}


def run_deferring(operator: GeminiSubmitBatchOperator, ctx: dict[str, Any]) -> tuple[Any, list[TaskDeferred]]:
    """Execute, and on each deferral run the trigger as the triggerer would and resume; return (result, deferrals)."""
    deferrals: list[TaskDeferred] = []
    call: Any = lambda: operator.execute(ctx)  # noqa: E731
    while True:
        try:
            return call(), deferrals
        except TaskDeferred as deferred:
            deferrals.append(deferred)
            event = asyncio.run(first_event(deferred))
            method = getattr(operator, deferred.method_name)
            call = lambda method=method, event=event, kwargs=deferred.kwargs or {}: method(ctx, event=event, **kwargs)  # noqa: E731


@pytest.fixture
def emulator(gemini_connection: EmulatorHandle) -> EmulatorHandle:
    gemini_connection.control.configure(max_concurrent_jobs=1, quota_retry_seconds=0.5, pending_seconds=60)
    return gemini_connection


def test_a_create_refused_for_quota_defers_and_creates_once_quota_frees(
    emulator: EmulatorHandle, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    control = emulator.control
    blocker = submit("blocker", wait_for_completion=False).execute(context("blocker"))
    waiting = submit("waiting", wait_for_completion=False)
    ctx = context("waiting")

    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute(ctx)
    assert control.created_count() == 1
    assert control.request_counts()[CREATE] == 2, "the 429 was not retried in the worker: it deferred at once"
    assert type(deferred.value.trigger).__name__ == "GeminiQuotaWaitTrigger"
    moment = deferred.value.trigger.moment
    assert time.time() + 0.3 < moment < time.time() + 2, "the wait is the RetryInfo delay (0.5 s), jittered"
    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err  # stdlib logging and Airflow's structlog output
    assert "Waiting for quota" in logged
    assert "RESOURCE_EXHAUSTED" in logged
    assert "concurrent batch jobs" in logged, "the log says what the task waits for"

    control.set_state(blocker, "SUCCEEDED")  # Quota frees.
    event = asyncio.run(first_event(deferred.value))
    name = getattr(waiting, deferred.value.method_name)(ctx, event=event, **(deferred.value.kwargs or {}))

    assert name.startswith("batches/")
    assert control.created_count() == 2
    assert ctx["ti"].xcom["batch_name"] == name


def test_many_tasks_over_a_one_job_limit_each_create_exactly_once(emulator: EmulatorHandle) -> None:
    emulator.control.configure(pending_seconds=0.2, running_seconds=0.2)
    names = []
    for index in range(3):
        name, deferrals = run_deferring(submit("shards", wait_for_completion=True), context("shards", index))
        names.append(name)
        assert deferrals, "each waited its job in the triggerer"

    jobs = emulator.control.batches()
    assert len(jobs) == 3
    assert sorted(job["name"] for job in jobs) == sorted(names)


def test_the_wait_ends_at_the_timeout_with_what_to_do(emulator: EmulatorHandle) -> None:
    submit("blocker", wait_for_completion=False).execute(context("blocker"))

    with pytest.raises(GeminiBatchRateLimitError, match="no job was created") as raised:
        run_deferring(submit("waiting", wait_for_completion=False, timeout=1.5), context("waiting"))

    assert "timeout" in str(raised.value)
    assert emulator.control.created_count() == 1


def test_a_worker_side_submit_waits_out_quota_in_the_worker(emulator: EmulatorHandle) -> None:
    control = emulator.control
    blocker = submit("blocker", wait_for_completion=False).execute(context("blocker"))
    control.configure(max_concurrent_jobs=1)

    started = time.monotonic()
    threading.Timer(1.0, control.set_state, (blocker, "SUCCEEDED")).start()
    name = submit("waiting", wait_for_completion=False, deferrable=False).execute(context("waiting"))

    assert name.startswith("batches/")
    assert time.monotonic() - started >= 1.0
    assert control.created_count() == 2


def test_an_input_file_is_uploaded_once_however_often_quota_refuses_the_create(
    emulator: EmulatorHandle, tmp_path: Any
) -> None:
    control = emulator.control
    blocker = submit("blocker", wait_for_completion=False).execute(context("blocker"))
    path = tmp_path / "shard.jsonl"
    path.write_text('{"key": "a", "request": {"contents": [{"parts": [{"text": "a"}]}]}}\n')
    operator = GeminiSubmitBatchOperator(
        task_id="file", model=MODEL, input_path=str(path), wait_for_completion=False, poll_interval=0.1
    )
    threading.Timer(1.5, control.set_state, (blocker, "SUCCEEDED")).start()

    name, deferrals = run_deferring(operator, context("file"))

    assert len(deferrals) >= 2, "quota refused the create more than once"
    assert len(list(GeminiBatchHook().list_files())) == 1
    assert control.created_count() == 2
    assert name.startswith("batches/")
