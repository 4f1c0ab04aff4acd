"""The API key check: every API request but upload chunks needs the right key."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle

from ._support import base_url, send_chunk, start_upload


def test_missing_key_is_permission_denied(gemini_emulator: EmulatorHandle) -> None:
    response = httpx.get(f"{gemini_emulator.base_url}/v1beta/batches")

    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize("send", ["header", "query"])
def test_wrong_key_is_invalid_argument_with_api_key_invalid(gemini_emulator: EmulatorHandle, send: str) -> None:
    wrong = "wrong-key-0123456789"
    url = f"{gemini_emulator.base_url}/v1/files"
    if send == "header":
        response = httpx.get(url, headers={"x-goog-api-key": wrong})
    else:
        response = httpx.get(url, params={"key": wrong})

    error = response.json()["error"]
    assert (response.status_code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    assert wrong not in response.text


def test_right_key_in_query_is_accepted(gemini_emulator: EmulatorHandle) -> None:
    response = httpx.get(f"{gemini_emulator.base_url}/v1/files", params={"key": gemini_emulator.api_key})

    assert response.status_code == 200


def test_upload_chunks_are_authorised_by_their_upload_id(api: httpx.Client) -> None:
    upload_url = start_upload(api, "v1beta", 2).headers["x-goog-upload-url"]

    final = send_chunk(upload_url, b"ok", 0, final=True)
    start_without_key = httpx.post(f"{base_url(api)}/upload/v1beta/files", headers={"X-Goog-Upload-Command": "start"})

    assert final.status_code == 200
    assert start_without_key.status_code == 403


def test_control_api_needs_no_key(gemini_emulator: EmulatorHandle) -> None:
    assert httpx.get(f"{gemini_emulator.base_url}/_emulator/config").status_code == 200
