"""Each way a batch can end, through the submit operator, deferrable and not (the sensor: tests/sensors/).

The trigger runs for real against the emulator; the assertions are on the exception class a DAG
author would catch, and on what the emulator did to the job.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchCancelled,
    GeminiBatchConnectionError,
    GeminiBatchError,
    GeminiBatchExpired,
    GeminiBatchFailed,
    GeminiBatchJobError,
    GeminiBatchPartialFailure,
    GeminiBatchTimeout,
)
from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator
from tests.airflow_flow import RecordingTaskInstance, requests, run_task


def submit(deferrable: bool, **kwargs: Any) -> GeminiSubmitBatchOperator:
    kwargs.setdefault("requests", requests(4))
    kwargs.setdefault("poll_interval", 0.1)
    return GeminiSubmitBatchOperator(task_id="submit", model="gemini-2.5-flash", deferrable=deferrable, **kwargs)


@pytest.fixture
def emulator(gemini_connection: EmulatorHandle) -> EmulatorHandle:
    gemini_connection.control.configure(running_seconds=0.3)
    return gemini_connection


class TestSubmitOperator:
    def test_succeeded_returns_the_name_and_pushes_it_first(self, emulator: EmulatorHandle, deferrable: bool) -> None:
        ti = RecordingTaskInstance()
        name, deferred = run_task(submit(deferrable), {"ti": ti})
        assert deferred == deferrable
        assert name == ti.xcom["batch_name"]
        assert emulator.control.batches()[0]["state"] == "BATCH_STATE_SUCCEEDED"

    def test_partial_failure_under_the_threshold_succeeds(self, emulator: EmulatorHandle, deferrable: bool) -> None:
        operator = submit(deferrable, requests=requests(4, failing=1), max_failed_requests=1)
        name, _ = run_task(operator)
        assert name.startswith("batches/")

    @pytest.mark.parametrize("limits", [{"max_failed_requests": 1}, {"max_failed_ratio": 0.25}])
    def test_partial_failure_over_the_threshold_fails(
        self, emulator: EmulatorHandle, deferrable: bool, limits: dict[str, Any]
    ) -> None:
        operator = submit(deferrable, requests=requests(4, failing=2), **limits)
        with pytest.raises(GeminiBatchPartialFailure, match="2 of 4 requests failed"):
            run_task(operator)

    def test_by_default_only_all_failed_fails(self, emulator: EmulatorHandle, deferrable: bool) -> None:
        run_task(submit(deferrable, requests=requests(4, failing=3)))
        with pytest.raises(GeminiBatchPartialFailure, match="all 4 requests failed"):
            run_task(submit(deferrable, requests=requests(4, failing=4)))

    @pytest.mark.parametrize(
        ("outcome", "error_class"),
        [("FAILED", GeminiBatchFailed), ("CANCELLED", GeminiBatchCancelled), ("EXPIRED", GeminiBatchExpired)],
    )
    def test_bad_terminal_states_raise_their_own_class_with_the_service_message(
        self, emulator: EmulatorHandle, deferrable: bool, outcome: str, error_class: type[GeminiBatchJobError]
    ) -> None:
        emulator.control.configure(outcome=outcome, outcome_message=f"the job was {outcome.lower()} by the test")
        with pytest.raises(error_class, match=f"the job was {outcome.lower()} by the test") as raised:
            run_task(submit(deferrable))
        assert raised.value.state == f"BATCH_STATE_{outcome}"

    def test_deadline_cancels_the_job_and_raises_timeout(self, emulator: EmulatorHandle, deferrable: bool) -> None:
        emulator.control.configure(running_seconds=60)
        with pytest.raises(GeminiBatchTimeout, match="cancelled"):
            run_task(submit(deferrable, timeout=0.5))
        assert [job["state"] for job in emulator.control.batches()] == ["BATCH_STATE_CANCELLED"]

    def test_deadline_can_leave_the_job_running(self, emulator: EmulatorHandle, deferrable: bool) -> None:
        emulator.control.configure(running_seconds=60)
        with pytest.raises(GeminiBatchTimeout, match="left running"):
            run_task(submit(deferrable, timeout=0.3, cancel_on_timeout=False))
        assert emulator.control.batches()[0]["state"] == "BATCH_STATE_RUNNING"

    def test_a_job_already_done_is_not_deferred(self, emulator: EmulatorHandle) -> None:
        emulator.control.configure(running_seconds=0)
        operator = submit(True, wait_for_completion=True)
        # The create reply says PENDING; the check before deferring sees it finished.
        _, deferred = run_task(operator)
        assert not deferred

    def test_without_waiting_it_returns_at_once(self, emulator: EmulatorHandle) -> None:
        emulator.control.configure(running_seconds=60)
        name, deferred = run_task(submit(True, wait_for_completion=False))
        assert not deferred
        assert emulator.control.batches()[0]["state"] in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")
        assert name == emulator.control.batches()[0]["name"]

    def test_on_kill_cancels_the_job(self, emulator: EmulatorHandle) -> None:
        emulator.control.configure(running_seconds=60)
        operator = submit(False, wait_for_completion=False)
        run_task(operator)
        operator.on_kill()
        assert emulator.control.batches()[0]["state"] == "BATCH_STATE_CANCELLED"

    def test_execute_complete_rejects_a_missing_or_unknown_event(self, emulator: EmulatorHandle) -> None:
        operator = submit(True)
        for event in (None, {"status": "weird", "batch_name": "batches/x"}, {"status": "terminal"}):
            with pytest.raises(GeminiBatchError, match="invalid trigger event"):
                operator.execute_complete({}, event)


class TestExits:
    def test_a_failed_jobs_message_reaches_the_task_log(
        self, emulator: EmulatorHandle, caplog: pytest.LogCaptureFixture
    ) -> None:
        emulator.control.configure(outcome="FAILED", outcome_message="Input file has a malformed line")
        with pytest.raises(GeminiBatchFailed, match="malformed line"):
            run_task(submit(True))
        assert "Input file has a malformed line" in caplog.text

    @pytest.mark.parametrize(("cancel_on_error", "final_state"), [(True, "CANCELLED"), (False, "RUNNING")])
    def test_a_wait_ended_by_a_permanent_error_cancels_the_job_unless_told_not_to(
        self, no_retry_connection: EmulatorHandle, deferrable: bool, cancel_on_error: bool, final_state: str
    ) -> None:
        emulator = no_retry_connection
        emulator.control.configure(running_seconds=60)
        # Two: the deferrable path looks once before deferring, and a failed look is left to the trigger.
        emulator.control.inject_fault("status", status=403, count=2, method="GET", path_contains="batches/")
        with pytest.raises(GeminiBatchError, match="HTTP 403") as raised:
            run_task(submit(deferrable, cancel_on_error=cancel_on_error))
        assert type(raised.value) is GeminiBatchError
        assert emulator.control.batches()[0]["state"] == f"BATCH_STATE_{final_state}"
        assert emulator.control.created_count() == 1

    def test_an_outage_past_its_limit_fails_the_task_and_never_cancels_the_job(
        self, no_retry_connection: EmulatorHandle, deferrable: bool
    ) -> None:
        """Finding 1 (worker wait) and 2 (trigger): an outage ended the wait by cancelling, or abandoning, the job."""
        emulator = no_retry_connection
        emulator.control.configure(running_seconds=60)
        outage = threading.Timer(
            0.5, emulator.control.inject_fault, ("status",), {"status": 503, "method": "GET", "seconds": 6}
        )
        outage.start()  # The service goes away once the wait has begun.
        try:
            with pytest.raises(GeminiBatchConnectionError, match="left running: a retry of the task reconnects"):
                run_task(submit(deferrable, outage_limit=1.5))
        finally:
            outage.join()
        assert emulator.control.batches()[0]["state"] == "BATCH_STATE_RUNNING"
        assert not [r for r in emulator.control.requests() if r["path"].endswith(":cancel")]
        assert emulator.control.created_count() == 1

    @pytest.mark.slow
    def test_a_30_second_outage_is_ridden_out_and_the_job_never_cancelled(
        self, gemini_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, deferrable: bool
    ) -> None:
        """Acceptance: 30 s of 503s on GET batches/{id}, hook max_retries 1: the task succeeds, no cancel."""
        conn = {
            "conn_type": "gemini",
            "host": gemini_emulator.base_url,
            "password": gemini_emulator.api_key,
            "extra": {"max_retries": 1},
        }
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))
        gemini_emulator.control.configure(running_seconds=10)
        gemini_emulator.control.inject_fault("status", status=503, method="GET", path_contains="batches/", seconds=30)
        started = time.monotonic()
        name, _ = run_task(submit(deferrable, poll_interval=1.0))
        assert time.monotonic() - started >= 30, "the outage was ridden out, not skipped"
        (job,) = gemini_emulator.control.batches()
        assert (job["name"], job["state"]) == (name, "BATCH_STATE_SUCCEEDED")
        assert not [r for r in gemini_emulator.control.requests() if r["path"].endswith(":cancel")]

    def test_extra_batch_fields_reach_the_create(self, emulator: EmulatorHandle) -> None:
        name, _ = run_task(submit(True, extra_batch_fields={"priority": "7"}, wait_for_completion=False))
        operation = httpx.get(
            f"{emulator.base_url}/v1beta/{name}", headers={"x-goog-api-key": emulator.api_key or ""}
        ).json()
        assert operation["metadata"]["priority"] == "7"
