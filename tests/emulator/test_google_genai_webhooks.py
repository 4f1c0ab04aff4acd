"""Fidelity: the official google-genai SDK's webhooks client, unmodified, against the emulator.

``client.webhooks`` reads snake_case JSON; a reply in another shape would parse into empty fields,
so each test checks the fields the SDK hands back, not only that a call did not raise.
"""

from __future__ import annotations

import time

import pytest
import standardwebhooks
from google import genai
from google.genai import types

from airflow_provider_gemini_batch.emulator import EmulatorHandle

from ._receiver import Receiver
from ._support import prompt

URI = "https://example.com/gemini-batch/webhooks/gemini_default"


def test_create_get_list_update_delete(client: genai.Client) -> None:
    created = client.webhooks.create(uri=URI, subscribed_events=["batch.succeeded", "batch.failed"], name="nightly")
    fetched = client.webhooks.get(id=created.id)
    listed = client.webhooks.list(page_size=10)
    updated = client.webhooks.update(id=created.id, uri="https://example.org/x", update_mask="uri")
    client.webhooks.delete(id=created.id)

    assert created.id
    assert created.new_signing_secret is not None
    assert created.new_signing_secret.startswith("whsec_")
    assert (created.uri, created.subscribed_events, created.name, created.state) == (
        URI,
        ["batch.succeeded", "batch.failed"],
        "nightly",
        "enabled",
    )
    assert created.create_time is not None
    assert fetched.new_signing_secret is None
    assert fetched.signing_secrets is not None
    assert fetched.signing_secrets[0].truncated_secret
    assert [webhook.id for webhook in listed.webhooks or []] == [created.id]
    assert listed.next_page_token is None
    assert (updated.uri, updated.subscribed_events) == ("https://example.org/x", ["batch.succeeded", "batch.failed"])
    # The webhooks client raises its own, non-public NotFoundError (not google.genai.errors.APIError).
    with pytest.raises(Exception, match="Error code: 404"):
        client.webhooks.get(id=created.id)


def test_list_pages_with_the_sdk(client: genai.Client) -> None:
    ids = [client.webhooks.create(uri=URI, subscribed_events=["batch.expired"]).id for _ in range(3)]

    first = client.webhooks.list(page_size=2)
    second = client.webhooks.list(page_size=2, page_token=first.next_page_token)

    assert [webhook.id for webhook in (first.webhooks or []) + (second.webhooks or [])] == ids
    assert second.next_page_token is None


def test_rotate_signing_secret(client: genai.Client) -> None:
    created = client.webhooks.create(uri=URI, subscribed_events=["batch.succeeded"])

    rotated = client.webhooks.rotate_signing_secret(id=created.id)
    kept = client.webhooks.get(id=created.id)
    revoked = client.webhooks.rotate_signing_secret(
        id=created.id, revocation_behavior="revoke_previous_secrets_immediately"
    )

    assert rotated.secret is not None
    assert rotated.secret.startswith("whsec_")
    assert rotated.secret not in (created.new_signing_secret, revoked.secret)
    assert kept.signing_secrets is not None
    assert len(kept.signing_secrets) == 2
    assert kept.signing_secrets[1].expire_time is not None
    assert len(client.webhooks.get(id=created.id).signing_secrets or []) == 1


def test_ping_reaches_the_receiver(client: genai.Client) -> None:
    with Receiver() as receiver:
        created = client.webhooks.create(uri=receiver.url, subscribed_events=["batch.succeeded"])
        assert created.new_signing_secret is not None

        client.webhooks.ping(id=created.id)
        [received] = receiver.wait_for(1)

    payload = standardwebhooks.Webhook(created.new_signing_secret).verify(received.body, received.headers)
    assert payload["type"] == "ping"


def test_a_batch_created_with_webhook_config_is_announced_to_its_uri(
    client: genai.Client, gemini_emulator: EmulatorHandle
) -> None:
    with Receiver() as receiver:
        config = types.CreateBatchJobConfig(
            display_name="pushed",
            webhook_config=types.WebhookConfig(uris=[receiver.url], user_metadata={"run": "42"}),
        )
        job = client.batches.create(
            model="gemini-2.5-flash", src=[{"contents": [prompt("hi")["contents"][0]]}], config=config
        )
        [received] = receiver.wait_for(1)

    payload = standardwebhooks.Webhook(gemini_emulator.job_webhook_secret).verify(received.body, received.headers)
    assert payload["type"] == "batch.succeeded"
    assert payload["data"] == {"id": job.name, "user_metadata": {"run": "42"}}
    deadline = time.monotonic() + 5
    while client.batches.get(name=job.name).state != types.JobState.JOB_STATE_SUCCEEDED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
