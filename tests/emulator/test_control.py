"""The control API and its Python client."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorControl

from ._support import create, inline_config, upload


def test_configure_merges_and_validates(control: EmulatorControl) -> None:
    merged = control.configure(pending_seconds=0.5, outcome="batch_state_failed")

    assert merged == {
        "pending_seconds": 0.5,
        "running_seconds": 0.0,
        "outcome": "FAILED",
        "outcome_message": None,
        "chunk_granularity": 8388608,
        "discard_uploads": False,
        "generation_models": merged["generation_models"],
        "embedding_models": ["models/gemini-embedding-001", "models/gemini-embedding-2"],
        "job_webhook_secret": merged["job_webhook_secret"],
        "webhook_first_retry_seconds": 0.5,
        "webhook_max_retry_seconds": 5.0,
        "webhook_retry_seconds": 30.0,
        "webhook_attempt_timeout_seconds": 5.0,
        "webhook_results_field": "output_file_uri",
        "max_concurrent_jobs": None,
        "max_enqueued_tokens": None,
        "quota_retry_seconds": 5.0,
    }
    assert "models/gemini-2.5-flash" in merged["generation_models"]
    assert merged["job_webhook_secret"].startswith("whsec_")
    assert control.config() == merged
    for bad in (
        {"outcome": "RUNNING"},
        {"pending_seconds": -1},
        {"chunk_granularity": 0},
        {"colour": "blue"},
        {"discard_uploads": 1},
        {"job_webhook_secret": "not-a-secret"},
        {"job_webhook_secret": "whsec_!!"},
        {"webhook_retry_seconds": 0},
        {"webhook_results_field": "uri"},
    ):
        with pytest.raises(httpx.HTTPStatusError):
            control.configure(**bad)


def test_reset_forgets_everything_and_restores_start_up_config(api: httpx.Client, control: EmulatorControl) -> None:
    file_name = upload(api, "v1beta", b"x")["name"]
    create(api, "v1beta", inline_config("a"))
    control.configure(running_seconds=9)
    control.inject_fault("status", status=500, count=9)

    control.reset()

    assert control.created_count() == 0
    assert control.requests() == []
    assert control.config()["running_seconds"] == 0
    assert api.get("/v1beta/files").json() == {}
    assert api.get(f"/v1beta/{file_name}").status_code == 403


def test_batches_lists_every_job_including_deleted(api: httpx.Client, control: EmulatorControl) -> None:
    first = create(api, "v1beta", inline_config("a"), displayName="one")["name"]
    second = create(api, "v1", inline_config("b"))["name"]
    api.delete(f"/v1/{first}")

    listing = control.batches()

    assert control.created_count() == 2
    assert listing == [
        {
            "name": first,
            "state": "BATCH_STATE_SUCCEEDED",
            "displayName": "one",
            "model": "models/gemini-2.5-flash",
            "deleted": True,
        },
        {
            "name": second,
            "state": "BATCH_STATE_SUCCEEDED",
            "displayName": None,
            "model": "models/gemini-2.5-flash",
            "deleted": False,
        },
    ]


def test_request_log_has_no_query_strings_headers_or_control_calls(api: httpx.Client, control: EmulatorControl) -> None:
    api.get("/v1beta/files", params={"pageSize": 3, "key": "secret"})
    api.get("/v1beta/batches/unknown")
    control.config()

    log = control.requests()

    assert [(entry["method"], entry["path"], entry["status"]) for entry in log] == [
        ("GET", "/v1beta/files", 200),
        ("GET", "/v1beta/batches/unknown", 404),
    ]
    assert set(log[0]) == {"method", "path", "status", "time"}


def test_set_state_of_unknown_job_or_state_is_refused(api: httpx.Client, control: EmulatorControl) -> None:
    name = create(api, "v1beta", inline_config("a"))["name"]

    with pytest.raises(httpx.HTTPStatusError, match="404"):
        control.set_state("batches/nope", "FAILED")
    with pytest.raises(httpx.HTTPStatusError, match="400"):
        control.set_state(name, "not a state!")


def test_file_sha256_and_discard(api: httpx.Client, control: EmulatorControl) -> None:
    data = b"some bytes\n" * 1000
    name = upload(api, "v1", data)["name"]

    assert control.file_sha256(name) == hashlib.sha256(data).hexdigest()
    assert control.discard(data) == len(data)
