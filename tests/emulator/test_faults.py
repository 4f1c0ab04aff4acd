"""Injected faults: error statuses and connections dropped mid-request."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorControl

from ._support import MODEL, create, inline_config, send_chunk, start_upload, upload


@pytest.mark.parametrize(
    ("status", "name"),
    [(429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")],
)
def test_status_fault_answers_the_next_requests_then_stops(
    api: httpx.Client, control: EmulatorControl, status: int, name: str
) -> None:
    control.inject_fault("status", status=status, count=2)

    replies = [api.get("/v1beta/batches") for _ in range(3)]

    assert [reply.status_code for reply in replies] == [status, status, 200]
    assert replies[0].json()["error"]["status"] == name
    assert replies[0].json()["error"]["code"] == status


def test_status_fault_carries_retry_info_and_retry_after(api: httpx.Client, control: EmulatorControl) -> None:
    control.inject_fault("status", status=429, retry_delay="2s", retry_after="1")

    reply = api.get("/v1/files")

    assert reply.headers["retry-after"] == "1"
    assert reply.json()["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
    ]


def test_status_fault_matches_method_and_path(api: httpx.Client, control: EmulatorControl) -> None:
    control.inject_fault("status", status=503, method="POST", path_contains=":batchGenerateContent")

    listing = api.get("/v1beta/batches")
    refused = api.post(
        f"/v1beta/models/{MODEL}:batchGenerateContent", json={"batch": {"inputConfig": inline_config("a")}}
    )

    assert listing.status_code == 200
    assert refused.status_code == 503
    assert control.created_count() == 0


def test_clear_faults_removes_pending_rules(api: httpx.Client, control: EmulatorControl) -> None:
    control.inject_fault("status", status=500, count=5)
    control.clear_faults()

    assert api.get("/v1beta/batches").status_code == 200


def test_drop_upload_keeps_the_first_bytes_and_the_upload_can_resume(
    api: httpx.Client, control: EmulatorControl
) -> None:
    control.configure(chunk_granularity=4)
    data = b"abcdefghijkl"
    upload_url = start_upload(api, "v1beta", len(data)).headers["x-goog-upload-url"]
    control.inject_fault("drop_upload", after_bytes=4)

    with pytest.raises(httpx.TransportError):
        send_chunk(upload_url, data[:8], 0, final=False)
    received = int(
        httpx.post(upload_url, headers={"X-Goog-Upload-Command": "query"}).headers["x-goog-upload-size-received"]
    )
    final = send_chunk(upload_url, data[received:], received, final=True)

    assert received == 4
    assert final.json()["file"]["sizeBytes"] == "12"
    assert control.file_sha256(final.json()["file"]["name"]) == hashlib.sha256(data).hexdigest()
    statuses = [entry["status"] for entry in control.requests() if entry["method"] == "POST"]
    assert statuses == [200, 0, 200, 200]


def test_drop_after_create_creates_the_job_but_loses_the_reply(api: httpx.Client, control: EmulatorControl) -> None:
    control.inject_fault("drop_after_create")

    with pytest.raises(httpx.TransportError):
        create(api, "v1", inline_config("a"))

    assert control.created_count() == 1
    assert api.get("/v1/batches").json()["operations"][0]["name"] == control.batches()[0]["name"]


def test_drop_download_sends_some_bytes_then_a_range_request_finishes(
    api: httpx.Client, control: EmulatorControl
) -> None:
    data = bytes(range(256)) * 64
    name = upload(api, "v1beta", data)["name"]
    control.inject_fault("drop_download", after_bytes=1000)

    received = _download_until_dropped(api, f"/v1beta/{name}:download")
    rest = api.get(f"/v1beta/{name}:download", params={"alt": "media"}, headers={"Range": f"bytes={len(received)}-"})

    assert len(received) == 1000
    assert received + rest.content == data


def _download_until_dropped(api: httpx.Client, path: str) -> bytes:
    """Stream a download; return what arrived before the connection dropped."""
    received = bytearray()
    with api.stream("GET", path, params={"alt": "media"}) as response:
        try:
            for block in response.iter_bytes():
                received += block
        except httpx.TransportError:
            return bytes(received)
    raise AssertionError("the download completed: the connection was not dropped")


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "explode"},
        {"kind": "status", "status": 200},
        {"kind": "status", "count": -1},
        {"kind": "status", "x": 1},
    ],
)
def test_invalid_fault_rules_are_refused(control: EmulatorControl, fault: dict[str, object]) -> None:
    kind = str(fault.pop("kind"))

    with pytest.raises(httpx.HTTPStatusError) as caught:
        control.inject_fault(kind, **fault)

    assert caught.value.response.status_code == 400
