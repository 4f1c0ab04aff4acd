"""Faults that play with time and with the shape of a reply: outages, held creates, cut and slow replies."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorControl

from ._support import (
    EMBEDDING_MODEL,
    MODEL,
    base_url,
    create,
    inline_config,
    jsonl,
    prompt,
    start_upload,
    upload,
    wait_for_state,
)

CREATE_BODY = {"batch": {"inputConfig": inline_config("a")}}


def _wait_for(condition: object, timeout: float) -> float:
    """Poll ``condition()`` until true; return the seconds it took, fail after ``timeout``."""
    assert callable(condition)
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - started


def test_outage_refuses_every_matching_request_for_its_seconds_then_ends(
    api: httpx.Client, control: EmulatorControl
) -> None:
    name = create(api, "v1beta", inline_config("a"))["name"]
    started = time.monotonic()
    control.inject_fault("status", status=503, method="GET", path_contains="batches/", seconds=1.5)

    during = []
    while time.monotonic() - started < 1.0:
        during.append(api.get(f"/v1beta/{name}").status_code)
        time.sleep(0.05)
    unaffected = api.get("/v1beta/batches").status_code
    time.sleep(max(0.0, 1.7 - (time.monotonic() - started)))
    after = api.get(f"/v1beta/{name}").status_code

    assert len(during) >= 5
    assert set(during) == {503}
    assert unaffected == 200
    assert after == 200
    assert api.get("/_emulator/faults").json() == {"faults": []}


def test_outage_lists_how_long_it_has_left(api: httpx.Client, control: EmulatorControl) -> None:
    control.inject_fault("status", status=500, seconds=30)

    (rule,) = api.get("/_emulator/faults").json()["faults"]

    assert rule["kind"] == "status"
    assert 29 < rule["seconds_left"] <= 30


@pytest.mark.parametrize("method", ["batchGenerateContent", "asyncBatchEmbedContent"])
def test_hold_create_makes_the_job_even_after_the_client_gave_up(
    api: httpx.Client, control: EmulatorControl, method: str
) -> None:
    control.inject_fault("hold_create", seconds=1.5)
    model, body = MODEL, CREATE_BODY
    if method == "asyncBatchEmbedContent":
        items = [{"request": {"content": {"parts": [{"text": "a"}]}}}]
        model, body = EMBEDDING_MODEL, {"batch": {"inputConfig": {"requests": {"requests": items}}}}
    started = time.monotonic()

    with pytest.raises(httpx.TimeoutException):
        api.post(f"/v1beta/models/{model}:{method}", json=body, timeout=0.5)
    created_while_held = control.created_count()
    listing_started = time.monotonic()
    listing = api.get("/v1beta/batches")
    listing_seconds = time.monotonic() - listing_started
    _wait_for(lambda: control.created_count() == 1, timeout=3.0)

    assert created_while_held == 0
    assert listing.status_code == 200
    assert listing_seconds < 0.3  # the held create does not hold up other requests
    assert time.monotonic() - started >= 1.4
    assert control.batches()[0]["model"] == f"models/{model}"


def test_hold_create_answers_a_patient_client_after_the_hold(api: httpx.Client, control: EmulatorControl) -> None:
    control.inject_fault("hold_create", seconds=0.6, path_contains=":batchGenerateContent")
    started = time.monotonic()

    reply = api.post(f"/v1/models/{MODEL}:batchGenerateContent", json=CREATE_BODY)
    held = time.monotonic() - started
    quick_started = time.monotonic()
    create(api, "v1", inline_config("b"))

    assert reply.status_code == 200
    assert reply.json()["metadata"]["state"] == "BATCH_STATE_PENDING"
    assert held >= 0.55
    assert time.monotonic() - quick_started < 0.3  # the rule fired once
    assert control.created_count() == 2


def test_truncate_reply_cuts_the_json_but_completes_the_http_reply(api: httpx.Client, control: EmulatorControl) -> None:
    control.inject_fault("truncate_reply", after_bytes=20, path_contains=":batchGenerateContent")

    reply = api.post(f"/v1beta/models/{MODEL}:batchGenerateContent", json=CREATE_BODY)
    whole = api.post(f"/v1beta/models/{MODEL}:batchGenerateContent", json=CREATE_BODY)

    assert reply.status_code == 200
    assert reply.headers["content-length"] == "20"
    assert reply.content == b'{"name": "batches/' + reply.content[18:]
    assert len(reply.content) == 20
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.content)
    assert control.created_count() == 2  # the cut reply's job exists
    assert whole.json()["name"].startswith("batches/")
    assert [entry["status"] for entry in control.requests()] == [200, 200]


def test_trickle_sends_headers_at_once_then_one_byte_per_interval(api: httpx.Client, control: EmulatorControl) -> None:
    control.configure(pending_seconds=60)
    name = create(api, "v1beta", inline_config("a"))["name"]
    size = len(api.get(f"/v1beta/{name}").content)
    interval = 1.5 / size
    control.inject_fault("trickle", seconds=interval, method="GET", path_contains=name)
    arrivals: list[tuple[float, int]] = []
    concurrent: dict[str, float] = {}
    started = time.monotonic()

    with api.stream("GET", f"/v1beta/{name}") as response:
        headers_seconds = time.monotonic() - started
        for block in response.iter_raw():
            arrivals.append((time.monotonic() - started, len(block)))
            if len(arrivals) == 1:
                concurrent_started = time.monotonic()
                concurrent["status"] = api.get("/v1beta/batches").status_code
                concurrent["seconds"] = time.monotonic() - concurrent_started
    total = time.monotonic() - started
    received = sum(length for _, length in arrivals)

    assert response.status_code == 200
    assert response.headers["content-length"] == str(size)
    assert received == size
    assert headers_seconds < 0.3
    assert arrivals[0][0] < 0.3
    assert arrivals[0][1] <= 2  # one byte at a time (two if a read straddled a tick)
    assert 1.2 < total < 3.0
    assert concurrent == {"status": 200, "seconds": pytest.approx(0, abs=0.3)}


def test_trickle_stops_when_the_client_hangs_up(api: httpx.Client, control: EmulatorControl) -> None:
    name = create(api, "v1beta", inline_config("a"))["name"]
    control.inject_fault("trickle", seconds=0.05, method="GET", path_contains=name)

    with api.stream("GET", f"/v1beta/{name}") as response:
        first = next(response.iter_raw())
    hung_up = time.monotonic()

    def logged_as_dropped() -> bool:
        return any(entry["method"] == "GET" and entry["status"] == 0 for entry in control.requests())

    # A full trickle of this reply would take tens of seconds; a hang-up ends it at once.
    assert _wait_for(logged_as_dropped, timeout=2.0) < 1.0
    assert len(first) >= 1
    assert time.monotonic() - hung_up < 2.0
    assert api.get(f"/v1beta/{name}").status_code == 200


@pytest.mark.parametrize("prefix", ["/download", ""])
def test_end_download_early_ends_cleanly_after_whole_lines_and_a_range_gets_the_rest(
    api: httpx.Client, control: EmulatorControl, prefix: str
) -> None:
    rows = [{"key": f"k{index}", "request": prompt(f"question {index}")} for index in range(10)]
    input_file = upload(api, "v1beta", jsonl(rows))
    name = create(api, "v1beta", {"fileName": input_file["name"]})["name"]
    results = wait_for_state(api, "v1beta", name, "BATCH_STATE_SUCCEEDED")["metadata"]["output"]["responsesFile"]
    whole = api.get(f"/v1beta/{results}:download", params={"alt": "media"}).content
    control.inject_fault("end_download_early", after_lines=3)

    path = f"{prefix}/v1beta/{results}:download"
    short = api.get(path, params={"alt": "media"})
    rest = api.get(path, params={"alt": "media"}, headers={"Range": f"bytes={len(short.content)}-"})

    assert short.status_code == 200
    assert "content-length" not in short.headers
    assert short.headers["transfer-encoding"] == "chunked"
    assert short.content == b"".join(whole.splitlines(keepends=True)[:3])
    assert len(short.content.splitlines()) == 3
    assert rest.status_code == 206
    assert short.content + rest.content == whole
    assert len(whole.splitlines()) == 10


def test_end_download_early_counts_lines_from_the_range_start(api: httpx.Client, control: EmulatorControl) -> None:
    name = upload(api, "v1", b"one\ntwo\nthree\nfour\n")["name"]
    control.inject_fault("end_download_early", after_lines=2, count=2)

    first = api.get(f"/v1/{name}:download", params={"alt": "media"})
    second = api.get(f"/v1/{name}:download", params={"alt": "media"}, headers={"Range": "bytes=6-"})
    third = api.get(f"/v1/{name}:download", params={"alt": "media"})

    assert first.content == b"one\ntwo\n"
    assert (second.status_code, second.content) == (206, b"o\nthree\n")
    assert third.content == b"one\ntwo\nthree\nfour\n"


def test_upload_url_makes_the_start_reply_point_elsewhere(api: httpx.Client, control: EmulatorControl) -> None:
    elsewhere = "https://uploads.example.invalid/upload/v1beta/files?upload_id=foreign&upload_protocol=resumable"
    control.inject_fault("upload_url", url=elsewhere)

    redirected = start_upload(api, "v1beta", 10)
    normal = start_upload(api, "v1beta", 10)

    assert redirected.status_code == 200
    assert redirected.headers["x-goog-upload-url"] == elsewhere
    assert normal.headers["x-goog-upload-url"].startswith(base_url(api) + "/upload/v1beta/files?upload_id=")


def test_faults_wait_without_blocking_each_other(api: httpx.Client, control: EmulatorControl) -> None:
    control.inject_fault("hold_create", seconds=1.0)
    replies: list[int] = []
    worker = threading.Thread(
        target=lambda: replies.append(
            httpx.post(
                f"{base_url(api)}/v1beta/models/{MODEL}:batchGenerateContent",
                json=CREATE_BODY,
                headers=dict(api.headers),
            ).status_code
        )
    )
    worker.start()
    time.sleep(0.2)
    started = time.monotonic()
    quick = create(api, "v1beta", inline_config("b"))
    quick_seconds = time.monotonic() - started
    worker.join(5)

    assert quick["name"].startswith("batches/")
    assert quick_seconds < 0.3
    assert replies == [200]
    assert control.created_count() == 2


@pytest.mark.parametrize(
    ("fault", "complaint"),
    [
        ({"kind": "status", "status": 503, "seconds": -1}, "seconds"),
        ({"kind": "status", "status": 503, "seconds": 5, "count": 2}, "count"),
        ({"kind": "status", "status": 503, "seconds": "5"}, "seconds"),
        ({"kind": "drop_upload", "seconds": 2}, "seconds"),
        ({"kind": "hold_create"}, "seconds"),
        ({"kind": "hold_create", "seconds": 0}, "seconds"),
        ({"kind": "hold_create", "seconds": 1, "after_bytes": 3}, "after_bytes"),
        ({"kind": "trickle", "seconds": 0}, "seconds"),
        ({"kind": "trickle", "seconds": True}, "seconds"),
        ({"kind": "truncate_reply", "after_bytes": -5}, "after_bytes"),
        ({"kind": "truncate_reply", "status": 500}, "status"),
        ({"kind": "end_download_early", "after_lines": -1}, "after_lines"),
        ({"kind": "end_download_early", "after_bytes": 10}, "after_bytes"),
        ({"kind": "drop_download", "after_lines": 3}, "after_lines"),
        ({"kind": "upload_url"}, "url"),
        ({"kind": "upload_url", "url": ""}, "url"),
        ({"kind": "upload_url", "url": 5}, "url"),
        ({"kind": "status", "url": "http://x"}, "url"),
    ],
)
def test_timed_and_reply_faults_refuse_bad_parameters_saying_what_to_fix(
    control: EmulatorControl, fault: dict[str, object], complaint: str
) -> None:
    kind = str(fault.pop("kind"))

    with pytest.raises(httpx.HTTPStatusError) as caught:
        control.inject_fault(kind, **fault)

    assert caught.value.response.status_code == 400
    assert complaint in caught.value.response.json()["error"]["message"]


def test_a_reset_during_a_held_create_leaves_no_job_behind(api: httpx.Client, control: EmulatorControl) -> None:
    control.inject_fault("hold_create", seconds=0.6)

    with pytest.raises(httpx.TimeoutException):
        api.post(f"/v1beta/models/{MODEL}:batchGenerateContent", json=CREATE_BODY, timeout=0.2)
    control.reset()
    time.sleep(0.8)

    assert control.created_count() == 0
