"""Submit once: retries, crashes and lost replies never pay for a second job."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchFailed
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator
from tests.airflow_flow import RecordingTaskInstance, TaskStateStore, run_task

REQUESTS = [{"key": "k", "request": {"contents": [{"parts": [{"text": "hello"}]}]}}]


class WorkerCrash(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs, no except clause catches it."""


def submit(**kwargs: Any) -> GeminiSubmitBatchOperator:
    kwargs.setdefault("wait_for_completion", True)
    return GeminiSubmitBatchOperator(
        task_id="submit", model="gemini-2.5-flash", requests=REQUESTS, poll_interval=0.1, deferrable=True, **kwargs
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
    assert store.values == {}, "the crash came before the job's name was stored"
    name, _ = run_task(submit(), context(2, store))
    assert emulator.control.created_count() == 1
    assert emulator.control.batches()[0]["name"] == name


def test_a_succeeded_job_is_returned_without_resubmitting(emulator: EmulatorHandle) -> None:
    store = TaskStateStore()
    first, _ = run_task(submit(), context(1, store))
    second, deferred = run_task(submit(), context(2, store))
    assert (second, deferred) == (first, False)
    assert emulator.control.created_count() == 1


def test_a_failed_job_is_reported_again_not_resubmitted_by_default(emulator: EmulatorHandle) -> None:
    emulator.control.configure(outcome="FAILED", outcome_message="bad input")
    store = TaskStateStore()
    for try_number in (1, 2):
        with pytest.raises(GeminiBatchFailed, match="bad input"):
            run_task(submit(), context(try_number, store))
    assert emulator.control.created_count() == 1


def test_resubmit_on_failure_pays_for_a_new_job(emulator: EmulatorHandle) -> None:
    emulator.control.configure(outcome="FAILED", outcome_message="bad input")
    store = TaskStateStore()
    with pytest.raises(GeminiBatchFailed):
        run_task(submit(), context(1, store))
    emulator.control.configure(outcome="SUCCEEDED")
    run_task(submit(resubmit_on_failure=True), context(2, store))
    assert emulator.control.created_count() == 2


def test_a_lost_create_reply_is_resolved_by_lookup_not_by_resending(emulator: EmulatorHandle) -> None:
    emulator.control.inject_fault("drop_after_create", count=1)
    ti_context = context(1, TaskStateStore())
    name, _ = run_task(submit(), ti_context)
    assert emulator.control.created_count() == 1
    assert ti_context["task_state_store"].values == {"gemini_batch_name": name}


def test_reattach_can_be_switched_off(emulator: EmulatorHandle) -> None:
    store = TaskStateStore()
    run_task(submit(reattach=False, wait_for_completion=False), context(1, store))
    run_task(submit(reattach=False, wait_for_completion=False), context(2, store))
    assert emulator.control.created_count() == 2
