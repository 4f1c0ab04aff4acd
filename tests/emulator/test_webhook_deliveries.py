"""Webhook deliveries: a job's end is POSTed, signed (Standard Webhooks), at least once, with faults."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import standardwebhooks

from airflow_provider_gemini_batch.emulator import EmulatorControl, EmulatorHandle, run_emulator

from ._receiver import Receiver
from ._support import create, inline_config, jsonl, prompt, upload

BATCH_EVENTS = ["batch.succeeded", "batch.failed", "batch.cancelled", "batch.expired"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def fast_retries(control: EmulatorControl) -> None:
    control.configure(webhook_first_retry_seconds=0.05, webhook_max_retry_seconds=0.1, webhook_retry_seconds=5)


def _webhook(api: httpx.Client, url: str, events: list[str] | None = None) -> str:
    """Register a webhook; return its signing secret."""
    reply = api.post("/v1beta/webhooks", json={"uri": url, "subscribed_events": events or BATCH_EVENTS})
    assert reply.status_code == 200, reply.text
    secret: str = reply.json()["new_signing_secret"]
    return secret


def _verified(secret: str, body: bytes, headers: dict[str, str]) -> dict[str, object]:
    payload: dict[str, object] = standardwebhooks.Webhook(secret).verify(body, headers)
    return payload


def test_a_file_job_that_succeeds_is_announced_once_signed(
    api: httpx.Client, control: EmulatorControl, receiver: Receiver
) -> None:
    secret = _webhook(api, receiver.url)
    input_file = upload(api, "v1beta", jsonl([{"key": "k", "request": prompt("hi")}]))["name"]

    name = create(api, "v1beta", {"fileName": input_file})["name"]
    [received] = receiver.wait_for(1)
    [delivery] = control.wait_for_deliveries(1)

    payload = _verified(secret, received.body, received.headers)
    assert payload["type"] == "batch.succeeded"
    assert payload["version"] == "v1"
    assert payload["data"] == {"id": name, "output_file_uri": f"files/batch-{name.removeprefix('batches/')}"}
    sent_at = datetime.datetime.fromisoformat(str(payload["timestamp"])[:26]).replace(tzinfo=datetime.timezone.utc)
    assert abs(sent_at.timestamp() - time.time()) < 60
    assert received.headers["webhook-id"].startswith("msg_")
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 60
    assert received.headers["content-type"] == "application/json"
    assert delivery["webhook_id"] == received.headers["webhook-id"]
    assert (delivery["type"], delivery["batch"], delivery["url"], delivery["outcome"]) == (
        "batch.succeeded",
        name,
        receiver.url,
        "delivered",
    )
    assert [attempt["status"] for attempt in delivery["attempts"]] == [200]
    assert delivery["payload"] == payload
    time.sleep(0.2)
    assert len(receiver.received) == 1


def test_results_field_can_be_file_name(api: httpx.Client, control: EmulatorControl, receiver: Receiver) -> None:
    secret = _webhook(api, receiver.url)
    control.configure(webhook_results_field="file_name")
    input_file = upload(api, "v1", jsonl([{"key": "k", "request": prompt("hi")}]))["name"]

    name = create(api, "v1", {"fileName": input_file})["name"]
    [received] = receiver.wait_for(1)

    data = _verified(secret, received.body, received.headers)["data"]
    assert data == {"id": name, "file_name": f"files/batch-{name.removeprefix('batches/')}"}


def test_only_subscribed_events_are_delivered_and_failures_carry_the_error(
    api: httpx.Client, control: EmulatorControl, receiver: Receiver
) -> None:
    _webhook(api, receiver.url, ["batch.failed"])
    control.configure(running_seconds=30)
    succeeding = create(api, "v1beta", inline_config("a"))["name"]
    failing = create(api, "v1beta", inline_config("b"))["name"]

    control.set_state(succeeding, "SUCCEEDED")
    control.set_state(failing, "FAILED", message="The model gave up.")
    [received] = receiver.wait_for(1)
    time.sleep(0.2)

    payload = json.loads(received.body)
    assert len(receiver.received) == 1
    assert payload["type"] == "batch.failed"
    assert payload["data"] == {"id": failing, "error_code": 13, "error_message": "The model gave up."}
    assert control.deliveries(succeeding) == []


def test_a_cancel_is_announced_at_once_and_a_disabled_webhook_gets_nothing(
    api: httpx.Client, control: EmulatorControl, receiver: Receiver
) -> None:
    _webhook(api, receiver.url)
    with Receiver() as disabled:
        _webhook(api, disabled.url)
        disabled_id = api.get("/v1beta/webhooks").json()["webhooks"][1]["id"]
        api.patch(f"/v1beta/webhooks/{disabled_id}", json={"state": "disabled"})
        control.configure(pending_seconds=30)
        name = create(api, "v1beta", inline_config("a"))["name"]

        started = time.monotonic()
        api.post(f"/v1beta/{name}:cancel")
        [received] = receiver.wait_for(1)

        assert received.at - started < 1.0
        assert json.loads(received.body)["type"] == "batch.cancelled"
        assert json.loads(received.body)["data"]["error_message"] == "Batch was cancelled."
        assert disabled.received == []


def test_a_jobs_own_uris_replace_the_registered_webhooks_and_use_the_job_secret(
    api: httpx.Client, gemini_emulator: EmulatorHandle, receiver: Receiver
) -> None:
    control = gemini_emulator.control
    job_secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    control.configure(job_webhook_secret=job_secret)
    with Receiver() as registered:
        _webhook(api, registered.url)
        config = {"uris": [receiver.url], "user_metadata": {"run": "nightly"}}

        name = create(api, "v1beta", inline_config("a"), webhookConfig=config)["name"]
        [received] = receiver.wait_for(1)
        time.sleep(0.2)

        payload = _verified(job_secret, received.body, received.headers)
        assert payload["data"] == {"id": name, "user_metadata": {"run": "nightly"}}
        assert registered.received == []
        assert gemini_emulator.job_webhook_secret == job_secret
        assert control.deliveries(name)[0]["webhook"] is None


def test_the_job_secret_is_generated_at_start_and_survives_a_reset(control: EmulatorControl) -> None:
    before = control.job_webhook_secret()
    control.configure(job_webhook_secret="whsec_" + "QUJDREVGR0hJSktMTU5PUA==")

    control.reset()

    assert before.startswith("whsec_")
    assert control.job_webhook_secret() == before


@pytest.mark.usefixtures("fast_retries")
def test_a_failing_receiver_gets_the_same_event_again_until_it_accepts(
    api: httpx.Client, control: EmulatorControl
) -> None:
    with Receiver([500, 503]) as flaky:
        secret = _webhook(api, flaky.url)
        name = create(api, "v1beta", inline_config("a"))["name"]

        received = flaky.wait_for(3)
        [delivery] = control.wait_for_deliveries(1)

    assert len({entry.headers["webhook-id"] for entry in received}) == 1
    assert len({entry.body for entry in received}) == 1
    for entry in received:
        _verified(secret, entry.body, entry.headers)
    # Pauses of 0.05 s, then 0.1 s (doubled, and capped there).
    assert received[1].at - received[0].at >= 0.04
    assert received[2].at - received[1].at >= 0.09
    assert [attempt["status"] for attempt in delivery["attempts"]] == [500, 503, 200]
    assert (delivery["batch"], delivery["outcome"]) == (name, "delivered")


def test_delivery_gives_up_after_its_window(api: httpx.Client, control: EmulatorControl) -> None:
    control.configure(webhook_first_retry_seconds=0.05, webhook_max_retry_seconds=0.1, webhook_retry_seconds=0.4)
    with Receiver(default=503) as down:
        _webhook(api, down.url)
        create(api, "v1beta", inline_config("a"))

        [delivery] = control.wait_for_deliveries(1)

    assert delivery["outcome"] == "gave_up"
    assert 3 <= len(delivery["attempts"]) <= 8
    assert {attempt["status"] for attempt in delivery["attempts"]} == {503}


@pytest.mark.usefixtures("fast_retries")
def test_an_unreachable_receiver_is_retried_with_the_error_recorded(
    api: httpx.Client, control: EmulatorControl
) -> None:
    with Receiver() as gone:
        url = gone.url
    control.configure(webhook_retry_seconds=0.3)
    _webhook(api, url)
    create(api, "v1beta", inline_config("a"))

    [delivery] = control.wait_for_deliveries(1)

    assert delivery["outcome"] == "gave_up"
    assert len(delivery["attempts"]) >= 2
    assert all(attempt["status"] is None and attempt["error"] for attempt in delivery["attempts"])


def test_during_a_rotation_both_secrets_sign(api: httpx.Client, receiver: Receiver) -> None:
    first = _webhook(api, receiver.url)
    webhook_id = api.get("/v1beta/webhooks").json()["webhooks"][0]["id"]
    second = api.post(f"/v1beta/webhooks/{webhook_id}:rotateSigningSecret", json={}).json()["secret"]

    create(api, "v1beta", inline_config("a"))
    [received] = receiver.wait_for(1)

    assert len(received.headers["webhook-signature"].split(" ")) == 2
    _verified(first, received.body, received.headers)
    _verified(second, received.body, received.headers)


def test_ping_delivers_a_signed_ping_event(api: httpx.Client, control: EmulatorControl, receiver: Receiver) -> None:
    secret = _webhook(api, receiver.url, ["batch.succeeded"])
    webhook_id = api.get("/v1/webhooks").json()["webhooks"][0]["id"]

    reply = api.post(f"/v1/webhooks/{webhook_id}:ping", json={})
    [received] = receiver.wait_for(1)

    assert (reply.status_code, reply.json()) == (200, {})
    payload = _verified(secret, received.body, received.headers)
    assert payload["type"] == "ping"
    assert control.wait_for_deliveries(1)[0]["batch"] is None


def test_duplicate_fault_delivers_the_same_event_twice(
    api: httpx.Client, control: EmulatorControl, receiver: Receiver
) -> None:
    secret = _webhook(api, receiver.url)
    control.inject_fault("webhook_duplicate")

    create(api, "v1beta", inline_config("a"))
    first, second = receiver.wait_for(2)
    [delivery] = control.wait_for_deliveries(1)

    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    _verified(secret, second.body, second.headers)
    assert (delivery["copies"], len(delivery["attempts"]), delivery["outcome"]) == (2, 2, "delivered")


def test_delay_fault_holds_the_first_attempt(api: httpx.Client, control: EmulatorControl, receiver: Receiver) -> None:
    _webhook(api, receiver.url)
    control.inject_fault("webhook_delay", seconds=0.5)

    started = time.monotonic()
    create(api, "v1beta", inline_config("a"))
    [received] = receiver.wait_for(1)

    assert received.at - started >= 0.5


def test_drop_fault_sends_nothing_then_deliveries_resume(
    api: httpx.Client, control: EmulatorControl, receiver: Receiver
) -> None:
    _webhook(api, receiver.url)
    control.inject_fault("webhook_drop", count=1)

    dropped = create(api, "v1beta", inline_config("a"))["name"]
    control.wait_for_deliveries(1, batch_name=dropped)
    delivered = create(api, "v1beta", inline_config("b"))["name"]
    [received] = receiver.wait_for(1)

    assert json.loads(received.body)["data"]["id"] == delivered
    assert control.deliveries(dropped)[0]["outcome"] == "dropped"
    assert control.deliveries(dropped)[0]["attempts"] == []


def test_drop_outage_drops_every_delivery_for_its_seconds(
    api: httpx.Client, control: EmulatorControl, receiver: Receiver
) -> None:
    _webhook(api, receiver.url)
    control.inject_fault("webhook_drop", seconds=0.5)

    names = [create(api, "v1beta", inline_config(text))["name"] for text in "ab"]
    control.wait_for_deliveries(2)
    time.sleep(0.6)
    after = create(api, "v1beta", inline_config("c"))["name"]
    [received] = receiver.wait_for(1)

    assert [control.deliveries(name)[0]["outcome"] for name in names] == ["dropped", "dropped"]
    assert json.loads(received.body)["data"]["id"] == after


def test_wrong_signature_fault_fails_verification(
    api: httpx.Client, control: EmulatorControl, receiver: Receiver
) -> None:
    secret = _webhook(api, receiver.url)
    control.inject_fault("webhook_wrong_signature", path_contains="/hooks/")

    create(api, "v1beta", inline_config("a"))
    [received] = receiver.wait_for(1)

    with pytest.raises(standardwebhooks.WebhookVerificationError):
        _verified(secret, received.body, received.headers)


def test_a_slow_receiver_does_not_slow_the_api(api: httpx.Client, control: EmulatorControl) -> None:
    control.configure(webhook_attempt_timeout_seconds=3)
    with Receiver(hold_seconds=1.5) as slow:
        _webhook(api, slow.url)
        create(api, "v1beta", inline_config("a"))
        slow.wait_for(1)

        started = time.monotonic()
        for _ in range(5):
            assert api.get("/v1beta/batches").status_code == 200
        elapsed = time.monotonic() - started

        assert elapsed < 0.5
        assert control.deliveries()[0]["outcome"] == "pending"
        control.reset()
        assert control.deliveries() == []


def test_shutdown_cancels_deliveries_in_flight() -> None:
    with Receiver(hold_seconds=5) as stuck, run_emulator(api_key="k") as base_url:
        headers = {"x-goog-api-key": "k"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as api:
            _webhook(api, stuck.url)
            create(api, "v1beta", inline_config("a"))
            stuck.wait_for(1)
            started = time.monotonic()
    # Leaving run_emulator waited for the server thread: it ended without waiting out the receiver.
    assert time.monotonic() - started < 4


def test_request_counts_count_polls_per_job(api: httpx.Client, control: EmulatorControl) -> None:
    name = create(api, "v1beta", inline_config("a"))["name"]
    for _ in range(3):
        api.get(f"/v1beta/{name}")

    counts = control.request_counts()

    assert counts[f"GET /v1beta/{name}"] == 3
    assert counts["POST /v1beta/models/gemini-2.5-flash:batchGenerateContent"] == 1


def test_webhook_fault_fields_are_checked(control: EmulatorControl) -> None:
    for kind, params in [
        ("webhook_delay", {}),
        ("webhook_duplicate", {"seconds": 1}),
        ("webhook_drop", {"seconds": 1, "count": 2}),
    ]:
        with pytest.raises(httpx.HTTPStatusError, match="400"):
            control.inject_fault(kind, **params)
