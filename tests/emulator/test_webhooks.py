"""The Webhooks resource: create, list, get, update, delete, rotate the signing secret; a job's webhookConfig."""

from __future__ import annotations

import base64
import datetime

import httpx
import pytest

from ._support import create, get_batch, inline_config

URI = "https://example.com/gemini-batch/webhooks/gemini_default"
EVENTS = ["batch.succeeded", "batch.failed"]


def _create(api: httpx.Client, version: str = "v1beta", **body: object) -> dict[str, object]:
    reply = api.post(f"/{version}/webhooks", json={"uri": URI, "subscribed_events": EVENTS, **body})
    assert reply.status_code == 200, reply.text
    webhook: dict[str, object] = reply.json()
    return webhook


def test_create_shows_the_signing_secret_once(api: httpx.Client, version: str) -> None:
    created = _create(api, version, name="nightly")
    secret = str(created.pop("new_signing_secret"))

    fetched = api.get(f"/{version}/webhooks/{created['id']}").json()
    listed = api.get(f"/{version}/webhooks").json()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert created["name"] == "nightly"
    assert (created["uri"], created["subscribed_events"], created["state"]) == (URI, EVENTS, "enabled")
    assert fetched == created
    assert listed == {"webhooks": [created]}
    [signing] = fetched["signing_secrets"]
    assert signing["truncated_secret"].startswith("whsec_")
    assert secret not in str(fetched)
    assert "expire_time" not in signing


def test_create_accepts_camel_case_and_a_chosen_id_once(api: httpx.Client) -> None:
    body = {"uri": URI, "subscribedEvents": ["batch.expired"], "displayName": "camel"}

    first = api.post("/v1/webhooks", params={"webhook_id": "mine"}, json=body)
    again = api.post("/v1/webhooks", params={"webhook_id": "mine"}, json=body)

    assert first.status_code == 200
    assert (first.json()["id"], first.json()["subscribed_events"], first.json()["name"]) == (
        "mine",
        ["batch.expired"],
        "camel",
    )
    assert again.status_code == 409
    assert again.json()["error"]["status"] == "ALREADY_EXISTS"


@pytest.mark.parametrize(
    "body",
    [
        {"subscribed_events": EVENTS},
        {"uri": "ftp://example.com/x", "subscribed_events": EVENTS},
        {"uri": URI},
        {"uri": URI, "subscribed_events": []},
        {"uri": URI, "subscribed_events": ["batch.exploded"]},
    ],
)
def test_create_refuses_a_bad_webhook(api: httpx.Client, body: dict[str, object]) -> None:
    reply = api.post("/v1beta/webhooks", json=body)

    assert reply.status_code == 400
    assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_list_pages(api: httpx.Client) -> None:
    ids = [_create(api)["id"] for _ in range(5)]

    seen, token, pages = [], None, 0
    while True:
        params = {"page_size": 2, **({"page_token": token} if token else {})}
        page = api.get("/v1beta/webhooks", params=params).json()
        seen += [webhook["id"] for webhook in page["webhooks"]]
        pages += 1
        token = page.get("next_page_token")
        if not token:
            break

    assert seen == ids
    assert pages == 3
    assert api.get("/v1beta/webhooks", params={"pageToken": "bogus"}).status_code == 400


def test_update_follows_the_mask_or_the_fields_sent(api: httpx.Client, version: str) -> None:
    webhook_id = _create(api, version)["id"]
    new_uri = "https://example.org/hook"

    masked = api.patch(
        f"/{version}/webhooks/{webhook_id}",
        params={"update_mask": "uri"},
        json={"uri": new_uri, "subscribed_events": ["batch.expired"]},
    ).json()
    unmasked = api.patch(f"/{version}/webhooks/{webhook_id}", json={"subscribedEvents": ["batch.cancelled"]}).json()
    disabled = api.patch(f"/{version}/webhooks/{webhook_id}", json={"state": "disabled"}).json()
    bad = api.patch(f"/{version}/webhooks/{webhook_id}", params={"update_mask": "id"}, json={})

    assert (masked["uri"], masked["subscribed_events"]) == (new_uri, EVENTS)
    assert (unmasked["uri"], unmasked["subscribed_events"]) == (new_uri, ["batch.cancelled"])
    assert disabled["state"] == "disabled"
    assert "new_signing_secret" not in masked
    assert bad.status_code == 400


def test_delete_then_the_webhook_is_gone(api: httpx.Client, version: str) -> None:
    webhook_id = _create(api, version)["id"]

    deleted = api.delete(f"/{version}/webhooks/{webhook_id}")

    assert (deleted.status_code, deleted.json()) == (200, {})
    assert api.get(f"/{version}/webhooks/{webhook_id}").status_code == 404
    assert api.delete(f"/{version}/webhooks/{webhook_id}").status_code == 404
    assert api.get(f"/{version}/webhooks").json() == {}


def test_rotation_keeps_the_previous_secret_for_24_hours_unless_revoked_now(api: httpx.Client) -> None:
    webhook_id = _create(api)["id"]

    rotated = api.post(f"/v1beta/webhooks/{webhook_id}:rotateSigningSecret", json={}).json()
    after_rotation = api.get(f"/v1beta/webhooks/{webhook_id}").json()
    revoked = api.post(
        f"/v1beta/webhooks/{webhook_id}:rotateSigningSecret",
        json={"revocationBehavior": "revoke_previous_secrets_immediately"},
    ).json()
    after_revocation = api.get(f"/v1beta/webhooks/{webhook_id}").json()
    bad = api.post(f"/v1beta/webhooks/{webhook_id}:rotateSigningSecret", json={"revocation_behavior": "never"})

    assert set(rotated) == {"secret"}
    assert rotated["secret"].startswith("whsec_")
    assert revoked["secret"] != rotated["secret"]
    current, previous = after_rotation["signing_secrets"]
    assert "expire_time" not in current
    expires = datetime.datetime.fromisoformat(previous["expire_time"][:26])
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert datetime.timedelta(hours=23, minutes=59) < expires - now <= datetime.timedelta(hours=24)
    assert len(after_revocation["signing_secrets"]) == 1
    assert rotated["secret"] not in str(after_rotation)
    assert bad.status_code == 400


def test_unknown_webhook_is_404_everywhere(api: httpx.Client) -> None:
    replies = [
        api.get("/v1beta/webhooks/nope"),
        api.patch("/v1beta/webhooks/nope", json={"uri": URI}),
        api.post("/v1beta/webhooks/nope:ping", json={}),
        api.post("/v1beta/webhooks/nope:rotateSigningSecret", json={}),
    ]

    assert [reply.status_code for reply in replies] == [404] * 4
    assert replies[0].json()["error"]["status"] == "NOT_FOUND"


def test_a_job_echoes_its_webhook_config_in_camel_case(api: httpx.Client, version: str) -> None:
    config = {"uris": [URI], "user_metadata": {"run": "2026-01-01"}}

    created = create(api, version, inline_config("a"), webhookConfig=config)
    fetched = get_batch(api, version, created["name"])
    plain = create(api, version, inline_config("b"))

    expected = {"uris": [URI], "userMetadata": {"run": "2026-01-01"}}
    assert created["metadata"]["webhookConfig"] == expected
    assert fetched["metadata"]["webhookConfig"] == expected
    assert "webhookConfig" not in plain["metadata"]


@pytest.mark.parametrize(
    "config",
    [{"uris": "https://example.com"}, {"uris": ["not a url"]}, {"uris": [URI], "userMetadata": "x"}, "x"],
)
def test_a_job_with_a_bad_webhook_config_is_refused(api: httpx.Client, config: object) -> None:
    reply = api.post(
        "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
        json={"batch": {"inputConfig": inline_config("a"), "webhookConfig": config}},
    )

    assert reply.status_code == 400
