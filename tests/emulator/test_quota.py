"""Quota at create: the concurrent-jobs limit and the enqueued-token limit (docs/protocol.md "Quota at create").

A create over either limit is answered 429 RESOURCE_EXHAUSTED with a ``RetryInfo`` detail and makes
no job; once a job ends (or is cancelled or deleted) its share is free again.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from airflow_provider_gemini_batch.emulator import EmulatorControl, EmulatorHandle

from ._support import MODEL, inline_config, jsonl, prompt, upload


def _create(api: httpx.Client, version: str, config: dict[str, Any]) -> httpx.Response:
    return api.post(f"/{version}/models/{MODEL}:batchGenerateContent", json={"batch": {"inputConfig": config}})


def test_a_create_over_the_concurrent_job_limit_is_429_with_retry_info_and_makes_no_job(
    api: httpx.Client, control: EmulatorControl, version: str
) -> None:
    control.configure(max_concurrent_jobs=2, pending_seconds=60, quota_retry_seconds=7)
    first, second = _create(api, version, inline_config("a")), _create(api, version, inline_config("b"))

    refused = _create(api, version, inline_config("c"))

    assert (first.status_code, second.status_code) == (200, 200)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert "concurrent" in error["message"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in error["details"]
    assert control.created_count() == 2


def test_a_finished_or_cancelled_job_frees_its_slot(api: httpx.Client, control: EmulatorControl, version: str) -> None:
    control.configure(max_concurrent_jobs=1, pending_seconds=60)
    first = _create(api, version, inline_config("a")).json()["name"]
    assert _create(api, version, inline_config("b")).status_code == 429

    api.post(f"/{version}/{first}:cancel")

    assert _create(api, version, inline_config("b")).status_code == 200


def test_the_enqueued_token_limit_counts_a_quarter_of_each_request_lines_bytes(
    api: httpx.Client, control: EmulatorControl, version: str
) -> None:
    rows = [{"key": f"k{index}", "request": prompt("x" * 300)} for index in range(4)]
    data = jsonl(rows)
    estimate = sum(-(-len(line) // 4) for line in data.splitlines())
    control.configure(max_enqueued_tokens=estimate + 10, pending_seconds=60)
    file = upload(api, version, data)

    first = _create(api, version, {"fileName": file["name"]})
    refused = _create(api, version, {"fileName": file["name"]})

    assert first.status_code == 200
    assert refused.status_code == 429
    assert "Enqueued tokens" in refused.json()["error"]["message"]
    assert control.created_count() == 1


def test_limits_are_off_by_default(api: httpx.Client, control: EmulatorControl, version: str) -> None:
    control.configure(pending_seconds=60)
    assert all(_create(api, version, inline_config(str(index))).status_code == 200 for index in range(5))


@pytest.mark.parametrize("setting", ["max_concurrent_jobs", "max_enqueued_tokens", "quota_retry_seconds"])
def test_bad_limits_are_refused(api: httpx.Client, setting: str) -> None:
    reply = api.post("/_emulator/config", json={setting: -1})

    assert reply.status_code == 400
    assert setting in reply.text


def test_the_google_genai_sdk_sees_a_429_resource_exhausted(gemini_emulator: EmulatorHandle) -> None:
    gemini_emulator.control.configure(max_concurrent_jobs=1, pending_seconds=60)
    options = types.HttpOptions(base_url=gemini_emulator.base_url, api_version="v1beta")
    with genai.Client(api_key=gemini_emulator.api_key, http_options=options) as sdk:
        sdk.batches.create(model=MODEL, src=[{"contents": prompt("one")["contents"]}])
        with pytest.raises(errors.ClientError) as caught:
            sdk.batches.create(model=MODEL, src=[{"contents": prompt("two")["contents"]}])

    assert caught.value.code == 429
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    assert any("RetryInfo" in str(detail) for detail in caught.value.details["error"]["details"])
