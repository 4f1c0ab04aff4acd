"""Job timing and outcomes: states computed from the clock, forced states, progress counters."""

from __future__ import annotations

import time

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorControl
from airflow_provider_gemini_batch.emulator._config import EmulatorConfig
from airflow_provider_gemini_batch.emulator._jobs import Job

from ._support import create, get_batch, inline_config, wait_for_state


def test_job_moves_pending_running_succeeded_with_the_clock(api: httpx.Client, control: EmulatorControl) -> None:
    control.configure(pending_seconds=0.3, running_seconds=0.3)
    created = create(api, "v1beta", inline_config("a"))
    name = created["name"]

    pending = get_batch(api, "v1beta", name)
    running = wait_for_state(api, "v1beta", name, "BATCH_STATE_RUNNING")
    succeeded = wait_for_state(api, "v1beta", name, "BATCH_STATE_SUCCEEDED")

    assert pending["metadata"]["state"] == "BATCH_STATE_PENDING"
    assert "done" not in pending
    assert "done" not in running
    assert "endTime" not in running["metadata"]
    assert running["metadata"]["updateTime"] > created["metadata"]["createTime"]
    assert succeeded["done"] is True
    assert succeeded["metadata"]["endTime"] == succeeded["metadata"]["updateTime"]


def test_create_reply_is_pending_even_for_an_instant_job(api: httpx.Client, control: EmulatorControl) -> None:
    assert control.config()["pending_seconds"] == 0

    created = create(api, "v1", inline_config("a"))

    assert created["metadata"]["state"] == "BATCH_STATE_PENDING"
    assert get_batch(api, "v1", created["name"])["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"


def test_running_job_reports_progress_that_adds_up(api: httpx.Client, control: EmulatorControl) -> None:
    control.configure(running_seconds=1.0)
    name = create(api, "v1beta", inline_config(*[f"p{index}" for index in range(10)], "[[fail]]"))["name"]
    time.sleep(0.5)

    stats = get_batch(api, "v1beta", name)["metadata"]["batchStats"]

    counts = {key: int(value) for key, value in stats.items()}
    assert counts["requestCount"] == 11
    assert 0 < counts.get("successfulRequestCount", 0) < 11
    assert (
        counts.get("successfulRequestCount", 0) + counts.get("failedRequestCount", 0) + counts["pendingRequestCount"]
        == 11
    )


@pytest.mark.parametrize(
    ("outcome", "code", "message"),
    [
        ("FAILED", 13, "Batch failed."),
        ("CANCELLED", 13, "Batch was cancelled."),
        ("EXPIRED", 4, "Batch expired: it was pending or running for more than 48 hours."),
    ],
)
def test_configured_outcome_ends_the_job_with_an_error_and_no_output(
    api: httpx.Client, control: EmulatorControl, outcome: str, code: int, message: str
) -> None:
    control.configure(outcome=outcome)
    name = create(api, "v1beta", inline_config("a"))["name"]

    operation = wait_for_state(api, "v1beta", name, f"BATCH_STATE_{outcome}")

    assert operation["done"] is True
    assert operation["error"] == {"code": code, "message": message}
    assert "output" not in operation["metadata"]
    assert "response" not in operation


def test_outcome_message_is_used_and_config_is_captured_at_creation(
    api: httpx.Client, control: EmulatorControl
) -> None:
    control.configure(outcome="FAILED", outcome_message="Quota of the day used up.")
    failing = create(api, "v1beta", inline_config("a"))["name"]
    control.configure(outcome="SUCCEEDED", outcome_message=None)

    assert get_batch(api, "v1beta", failing)["error"]["message"] == "Quota of the day used up."
    assert get_batch(api, "v1beta", create(api, "v1beta", inline_config("b"))["name"])["metadata"]["state"] == (
        "BATCH_STATE_SUCCEEDED"
    )


def test_set_state_forces_and_holds_states(api: httpx.Client, control: EmulatorControl) -> None:
    name = create(api, "v1beta", inline_config("a"))["name"]

    control.set_state(name, "RUNNING")
    held = get_batch(api, "v1beta", name)
    control.set_state(name, "BATCH_STATE_FAILED", message="Backend exploded.")
    failed = get_batch(api, "v1beta", name)
    control.set_state(name, "JOB_STATE_SUCCEEDED")
    succeeded = get_batch(api, "v1beta", name)

    assert held["metadata"]["state"] == "BATCH_STATE_RUNNING"
    assert failed["error"] == {"code": 13, "message": "Backend exploded."}
    assert succeeded["metadata"]["output"]["inlinedResponses"]["inlinedResponses"][0]["metadata"] == {"key": "k0"}
    assert "error" not in succeeded


def test_set_state_accepts_unknown_states_as_non_terminal(api: httpx.Client, control: EmulatorControl) -> None:
    name = create(api, "v1beta", inline_config("a"))["name"]

    control.set_state(name, "BATCH_STATE_PAUSED_FOR_MAINTENANCE")
    operation = get_batch(api, "v1beta", name)

    assert operation["metadata"]["state"] == "BATCH_STATE_PAUSED_FOR_MAINTENANCE"
    assert "done" not in operation
    assert "error" not in operation
    assert operation["metadata"]["batchStats"] == {"requestCount": "1", "pendingRequestCount": "1"}


def test_a_job_pending_or_running_past_48_hours_expires() -> None:
    hour = 3600 * 10**9
    job = Job("abc", "models/m", False, EmulatorConfig(pending_seconds=40 * 3600, running_seconds=40 * 3600), 1, 0)

    assert job.view(job.created_ns + 41 * hour).state == "RUNNING"
    expired = job.view(job.created_ns + 49 * hour)
    assert (expired.state, expired.since_ns) == ("EXPIRED", job.created_ns + 48 * hour)
