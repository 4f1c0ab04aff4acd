"""Durable submit: retries, crashes, lost and late creates never pay for a second job."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchFailed,
    GeminiBatchInvalidArgumentError,
    GeminiBatchJobError,
)
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.idempotency import STORE_KEY
from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator
from tests.airflow_flow import RecordingTaskInstance, TaskStateStore, run_task

REQUESTS = [{"key": "k", "request": {"contents": [{"parts": [{"text": "hello"}]}]}}]


class WorkerCrash(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs, no except clause catches it."""


def submit(**kwargs: Any) -> GeminiSubmitBatchOperator:
    kwargs.setdefault("wait_for_completion", True)
    kwargs.setdefault("poll_interval", 0.1)
    return GeminiSubmitBatchOperator(
        task_id="submit", model="gemini-2.5-flash", requests=REQUESTS, deferrable=True, **kwargs
    )


def context(try_number: int, store: TaskStateStore | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"ti": RecordingTaskInstance(try_number=try_number)}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


@pytest.fixture
def emulator(gemini_connection: EmulatorHandle) -> EmulatorHandle:
    gemini_connection.control.configure(running_seconds=0.5)
    return gemini_connection


@pytest.mark.parametrize("with_store", [True, False], ids=["task_state_store", "list_scan"])
def test_a_retry_reattaches_to_the_running_job(emulator: EmulatorHandle, with_store: bool) -> None:
    store = TaskStateStore() if with_store else None
    first, _ = run_task(submit(wait_for_completion=False), context(1, store))
    second, deferred = run_task(submit(), context(2, store))
    assert second == first
    assert deferred, "the reattached job was still running, so the retry waited on it"
    assert emulator.control.created_count() == 1


def test_display_name_keeps_the_users_name_and_carries_the_key(emulator: EmulatorHandle) -> None:
    run_task(submit(display_name="nightly tickets", wait_for_completion=False), context(1))
    (job,) = emulator.control.batches()
    assert job["displayName"].startswith("nightly tickets (airflow:")


def test_a_worker_crash_between_create_and_defer_leaves_one_job(
    emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = GeminiBatchHook.create_batch

    def create_then_crash(self: GeminiBatchHook, *args: Any, **kwargs: Any) -> Any:
        create(self, *args, **kwargs)
        raise WorkerCrash

    monkeypatch.setattr(GeminiBatchHook, "create_batch", create_then_crash)
    store = TaskStateStore()
    with pytest.raises(WorkerCrash):
        run_task(submit(), context(1, store))
    monkeypatch.setattr(GeminiBatchHook, "create_batch", create)  # The worker comes back.
    intent = store.values[STORE_KEY]
    assert intent["batch_name"] is None, "the crash came before the job's name was stored"
    assert intent["sent_at"] is not None, "the intent was recorded before the create was sent"
    name, _ = run_task(submit(), context(2, store))
    assert emulator.control.created_count() == 1
    assert emulator.control.batches()[0]["name"] == name


def test_a_succeeded_job_is_returned_without_resubmitting(emulator: EmulatorHandle) -> None:
    store = TaskStateStore()
    first, _ = run_task(submit(), context(1, store))
    second, deferred = run_task(submit(), context(2, store))
    assert (second, deferred) == (first, False)
    assert emulator.control.created_count() == 1


@pytest.mark.parametrize("outcome", ["FAILED", "CANCELLED", "EXPIRED"])
def test_a_retry_replaces_a_job_that_ended_badly_with_a_fresh_one(emulator: EmulatorHandle, outcome: str) -> None:
    emulator.control.configure(outcome=outcome, outcome_message="bad input")
    store = TaskStateStore()
    with pytest.raises(GeminiBatchJobError):
        run_task(submit(), context(1, store))
    emulator.control.configure(outcome="SUCCEEDED")
    second, _ = run_task(submit(), context(2, store))
    jobs = emulator.control.batches()
    assert [job["state"] for job in jobs] == [f"BATCH_STATE_{outcome}", "BATCH_STATE_SUCCEEDED"]
    assert second == jobs[1]["name"]
    assert store.values[STORE_KEY]["superseded"] == [jobs[0]["name"]]


def test_resubmit_on_failure_off_reports_the_failure_again_without_paying(emulator: EmulatorHandle) -> None:
    emulator.control.configure(outcome="FAILED", outcome_message="bad input")
    store = TaskStateStore()
    for try_number in (1, 2):
        with pytest.raises(GeminiBatchFailed, match="bad input"):
            run_task(submit(resubmit_on_failure=False), context(try_number, store))
    assert emulator.control.created_count() == 1


def test_a_lost_create_reply_is_resolved_by_lookup_not_by_resending(emulator: EmulatorHandle) -> None:
    emulator.control.inject_fault("drop_after_create", count=1)
    ti_context = context(1, TaskStateStore())
    name, _ = run_task(submit(), ti_context)
    assert emulator.control.created_count() == 1
    assert ti_context["task_state_store"].values[STORE_KEY]["batch_name"] == name


def test_an_unreadable_create_reply_is_resolved_by_lookup_and_the_job_is_watched(
    no_retry_connection: EmulatorHandle,
) -> None:
    """Finding 5: a 200 whose body is cut short made a job that nobody pushed, stored or watched."""
    emulator = no_retry_connection
    emulator.control.configure(running_seconds=0.3)
    emulator.control.inject_fault(
        "truncate_reply", method="POST", path_contains=":batchGenerateContent", after_bytes=20
    )
    ti_context = context(1, TaskStateStore())
    name, deferred = run_task(submit(), ti_context)
    (job,) = emulator.control.batches()
    assert name == job["name"] == ti_context["ti"].xcom["batch_name"]
    assert ti_context["task_state_store"].values[STORE_KEY]["batch_name"] == name
    assert deferred, "the job found by lookup was waited on"
    assert job["state"] == "BATCH_STATE_SUCCEEDED"


def test_a_create_held_past_the_request_timeout_is_found_not_paid_twice(
    gemini_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acceptance: request timeout 3 s, a create held 8 s before the service makes it: one job, not cancelled."""
    connection = {
        "conn_type": "gemini",
        "host": gemini_emulator.base_url,
        "password": gemini_emulator.api_key,
        "extra": {"timeout": 3, "max_retries": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(connection))
    gemini_emulator.control.configure(running_seconds=0.3)
    gemini_emulator.control.inject_fault("hold_create", seconds=8)
    store = TaskStateStore()
    started = time.monotonic()
    name, _ = run_task(submit(retries=1), context(1, store))
    assert time.monotonic() - started >= 8, "the task waited for the held create instead of creating again"
    (job,) = gemini_emulator.control.batches()
    assert (job["name"], job["state"]) == (name, "BATCH_STATE_SUCCEEDED")
    assert store.values[STORE_KEY]["in_doubt"] is True


def test_durable_can_be_switched_off(emulator: EmulatorHandle) -> None:
    store = TaskStateStore()
    run_task(submit(durable=False, wait_for_completion=False), context(1, store))
    run_task(submit(durable=False, wait_for_completion=False), context(2, store))
    assert emulator.control.created_count() == 2
    assert store.values == {}


def test_the_submit_operator_defers_by_default_whatever_default_deferrable_says(
    emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 9: with [operators] default_deferrable = False the wait held a worker slot for up to 48 h."""
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    operator = GeminiSubmitBatchOperator(
        task_id="submit", model="gemini-2.5-flash", requests=REQUESTS, poll_interval=0.1
    )
    _, deferred = run_task(operator, context(1))
    assert deferred


@pytest.mark.slow
def test_a_duplicate_that_lands_after_the_in_flight_window_is_cancelled(
    gemini_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create held longer than request timeout + 30 s: the task created again, so the late one is cancelled."""
    connection = {
        "conn_type": "gemini",
        "host": gemini_emulator.base_url,
        "password": gemini_emulator.api_key,
        "extra": {"timeout": 1, "max_retries": 0},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(connection))
    gemini_emulator.control.configure(running_seconds=10)
    gemini_emulator.control.inject_fault("hold_create", seconds=37)  # Lands 6 s after the window (1 + 30 s).
    store = TaskStateStore()
    name, _ = run_task(submit(poll_interval=0.5), context(1, store))
    jobs = {job["name"]: job["state"] for job in gemini_emulator.control.batches()}
    assert len(jobs) == 2, jobs
    assert jobs.pop(name) == "BATCH_STATE_SUCCEEDED"
    assert list(jobs.values()) == ["BATCH_STATE_CANCELLED"], "the late duplicate was cancelled"


def test_a_refused_create_leaves_no_intent_so_the_retry_creates_at_once(emulator: EmulatorHandle) -> None:
    emulator.control.inject_fault("status", status=400, count=1, method="POST", path_contains=":batchGenerateContent")
    store = TaskStateStore()
    with pytest.raises(GeminiBatchInvalidArgumentError):
        run_task(submit(), context(1, store))
    assert store.values[STORE_KEY]["sent_at"] is None, "a refused create made no job: nothing is in flight"
    started = time.monotonic()
    run_task(submit(), context(2, store))
    assert time.monotonic() - started < 20, "the retry did not wait out an in-flight window for a refused create"
    assert emulator.control.created_count() == 1
