"""The webhooks resource through the hook, on ``httpx.MockTransport``: paths, bodies, parsing, and a secret kept secret.

Wire shapes as ``docs/protocol.md`` ("Webhooks") gives them, and as the official SDK sends them
(snake_case bodies, ``update_mask``, ``revocation_behavior``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import httpx
import pytest

from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchAmbiguousCreateError,
    GeminiBatchAmbiguousWebhookCreateError,
    GeminiBatchInputError,
    GeminiBatchNotFoundError,
)
from airflow_provider_gemini_batch.hooks import GeminiBatchHook, GeminiWebhooksHook
from airflow_provider_gemini_batch.models import RotatedSigningSecret, Webhook
from airflow_provider_gemini_batch.settings import WEBHOOK_BATCH_EVENTS
from tests.hooks.conftest import Handler, error_reply

MakeHook = Callable[[Handler], GeminiBatchHook]
Logs = Callable[[], str]

SECRET = "whsec_c2VjcmV0LW9mLXRoZS10ZXN0LXdlYmhvb2s="
URI = "https://airflow.example.com/gemini-batch/webhooks/gemini_default"


def webhook(webhook_id: str = "w1", **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": f"webhooks/{webhook_id}",
        "uri": URI,
        "subscribedEvents": list(WEBHOOK_BATCH_EVENTS),
        "state": "enabled",
        "signingSecrets": [{"expireTime": "2026-02-01T00:00:00Z", "truncatedSecret": "whsec_c2Vj..."}],
        "createTime": "2026-01-01T00:00:00Z",
    }
    body.update(fields)
    return body


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Logs:
    """Everything logged so far, at DEBUG and up: stdlib logging (httpx) and Airflow's structlog output."""
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        captured = capsys.readouterr()
        return caplog.text + captured.out + captured.err

    return text


class Service:
    """Answers from a queue of replies and records every request (method, path, query, body)."""

    def __init__(self, *replies: httpx.Response) -> None:
        self.replies = list(replies)
        self.seen: list[tuple[str, str, dict[str, str], object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.seen.append((request.method, request.url.path, dict(request.url.params), body))
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class TestModel:
    def test_the_new_secret_is_read_but_never_shown(self) -> None:
        hook = Webhook.model_validate(webhook(newSigningSecret=SECRET))
        assert hook.new_signing_secret is not None
        assert hook.new_signing_secret.get_secret_value() == SECRET
        for shown in (repr(hook), str(hook), hook.model_dump_json(), json.dumps(hook.model_dump(mode="json"))):
            assert SECRET not in shown
        assert "new_signing_secret" not in hook.model_dump()

    def test_fields_parse_from_camel_and_snake_case(self) -> None:
        camel = Webhook.model_validate(webhook())
        snake = Webhook.model_validate(
            {
                "name": "webhooks/w1",
                "uri": URI,
                "subscribed_events": ["batch.succeeded"],
                "state": "enabled",
                "signing_secrets": [{"expire_time": "2026-02-01T00:00:00Z", "truncated_secret": "whsec_c2Vj..."}],
                "new_signing_secret": SECRET,
            }
        )
        assert camel.id == "w1"
        assert camel.subscribed_events == list(WEBHOOK_BATCH_EVENTS)
        assert camel.signing_secrets[0].truncated_secret == "whsec_c2Vj..."
        assert camel.create_time is not None
        assert snake.subscribed_events == ["batch.succeeded"]
        assert snake.signing_secrets[0].expire_time is not None
        assert snake.new_signing_secret is not None

    def test_the_sdk_shape_with_an_id_and_a_user_name_becomes_a_resource_name(self) -> None:
        """The SDK's Webhook has ``id`` and a user-given ``name``; the resource name is ``webhooks/{id}``."""
        parsed = Webhook.model_validate({"id": "abc", "name": "nightly results", "uri": URI, "subscribed_events": []})
        assert (parsed.name, parsed.display_name) == ("webhooks/abc", "nightly results")

    def test_unknown_fields_are_kept_and_a_new_state_does_not_break_parsing(self) -> None:
        parsed = Webhook.model_validate(webhook(state="paused_for_review", color="blue"))
        assert parsed.state == "paused_for_review"
        assert parsed.model_extra == {"color": "blue"}

    def test_summary_has_no_secret(self) -> None:
        summary = Webhook.model_validate(webhook(newSigningSecret=SECRET)).summary()
        assert summary == {"name": "webhooks/w1", "uri": URI, "subscribed_events": list(WEBHOOK_BATCH_EVENTS)}


class TestCreate:
    def test_create_posts_the_uri_and_events_and_returns_the_secret_once(self, make_hook: MakeHook, logs: Logs) -> None:
        service = Service(httpx.Response(200, json=webhook(newSigningSecret=SECRET)))
        created = make_hook(service).create_webhook(URI, display_name="results")
        assert service.seen == [
            (
                "POST",
                "/v1beta/webhooks",
                {},
                {"uri": URI, "subscribed_events": list(WEBHOOK_BATCH_EVENTS), "name": "results"},
            )
        ]
        assert created.name == "webhooks/w1"
        assert created.new_signing_secret is not None
        assert created.new_signing_secret.get_secret_value() == SECRET
        logged = logs()
        assert "webhooks/w1" in logged
        assert SECRET not in logged
        assert SECRET not in repr(created)

    def test_a_given_webhook_id_goes_in_the_query(self, make_hook: MakeHook) -> None:
        service = Service(httpx.Response(200, json=webhook("nightly", newSigningSecret=SECRET)))
        make_hook(service).create_webhook(URI, subscribed_events=["batch.succeeded"], webhook_id="nightly")
        method, path, query, body = service.seen[0]
        assert (method, path, query) == ("POST", "/v1beta/webhooks", {"webhook_id": "nightly"})
        assert body == {"uri": URI, "subscribed_events": ["batch.succeeded"]}

    def test_without_an_id_a_lost_reply_is_never_resent(self, make_hook: MakeHook) -> None:
        service = Service(error_reply(503, "UNAVAILABLE", "try later"))
        with pytest.raises(GeminiBatchAmbiguousCreateError, match="webhook") as raised:
            make_hook(service).create_webhook(URI)
        assert isinstance(raised.value, GeminiBatchAmbiguousWebhookCreateError)
        assert len(service.seen) == 1, "a create without webhook_id may have landed: not resent"
        assert "batch on" not in str(raised.value), "the message speaks of a webhook, not a batch job"
        assert "HTTP 503" in str(raised.value)
        assert "list_webhooks" in str(raised.value)
        assert (raised.value.uri, raised.value.model, raised.value.display_name) == (URI, "webhooks", None)

    def test_with_an_id_a_retry_that_finds_it_created_gets_it_without_a_secret(
        self, make_hook: MakeHook, logs: Logs
    ) -> None:
        service = Service(
            error_reply(503, "UNAVAILABLE", "try later"),
            error_reply(409, "ALREADY_EXISTS", "webhook nightly already exists"),
            httpx.Response(200, json=webhook("nightly")),
        )
        found = make_hook(service).create_webhook(URI, webhook_id="nightly")
        assert [(method, path) for method, path, _, _ in service.seen] == [
            ("POST", "/v1beta/webhooks"),
            ("POST", "/v1beta/webhooks"),
            ("GET", "/v1beta/webhooks/nightly"),
        ]
        assert found.name == "webhooks/nightly"
        assert found.new_signing_secret is None
        assert "already exists" in logs()

    @pytest.mark.parametrize(
        ("uri", "events", "webhook_id", "message"),
        [
            ("/gemini-batch/webhooks/x", None, None, "absolute http"),
            ("ftp://example.com/hook", None, None, "absolute http"),
            ("", None, None, "uri is empty"),
            (URI, "batch.succeeded", None, "list of event names"),
            (URI, [], None, "at least one event"),
            (URI, None, "has/slash", "webhook_id"),
        ],
    )
    def test_bad_arguments_are_refused_before_any_request(
        self, make_hook: MakeHook, uri: str, events: object, webhook_id: str | None, message: str
    ) -> None:
        service = Service(httpx.Response(200, json=webhook()))
        kwargs: dict[str, object] = {"webhook_id": webhook_id}
        if events is not None:
            kwargs["subscribed_events"] = events
        with pytest.raises(GeminiBatchInputError, match=message):
            make_hook(service).create_webhook(uri, **kwargs)  # type: ignore[arg-type]
        assert service.seen == []


class TestOtherVerbs:
    def test_list_walks_every_page(self, make_hook: MakeHook) -> None:
        service = Service(
            httpx.Response(200, json={"webhooks": [webhook("a"), webhook("b")], "nextPageToken": "t2"}),
            httpx.Response(200, json={"webhooks": [webhook("c")], "next_page_token": "t3"}),
            httpx.Response(200, json={}),
        )
        names = [hook.name for hook in make_hook(service).list_webhooks(page_size=1000)]
        assert names == ["webhooks/a", "webhooks/b", "webhooks/c"]
        assert [query for _, _, query, _ in service.seen] == [
            {"pageSize": "1000"},
            {"pageSize": "1000", "pageToken": "t2"},
            {"pageSize": "1000", "pageToken": "t3"},
        ]

    def test_a_page_size_over_the_services_limit_is_refused(self, make_hook: MakeHook) -> None:
        service = Service(httpx.Response(200, json={}))
        with pytest.raises(GeminiBatchInputError, match="1000"):
            list(make_hook(service).list_webhooks(page_size=5000))
        assert service.seen == []

    def test_get_update_delete_ping(self, make_hook: MakeHook) -> None:
        service = Service(httpx.Response(200, json=webhook()))
        hook = make_hook(service)
        assert hook.get_webhook("webhooks/w1").uri == URI
        hook.update_webhook("webhooks/w1", uri="https://new.example.com/hook", subscribed_events=["batch.failed"])
        hook.update_webhook("webhooks/w1", subscribed_events=["batch.failed"])
        hook.ping_webhook("webhooks/w1")
        hook.delete_webhook("webhooks/w1")
        assert service.seen == [
            ("GET", "/v1beta/webhooks/w1", {}, None),
            (
                "PATCH",
                "/v1beta/webhooks/w1",
                {"update_mask": "uri,subscribed_events"},
                {"uri": "https://new.example.com/hook", "subscribed_events": ["batch.failed"]},
            ),
            (
                "PATCH",
                "/v1beta/webhooks/w1",
                {"update_mask": "subscribed_events"},
                {"subscribed_events": ["batch.failed"]},
            ),
            ("POST", "/v1beta/webhooks/w1:ping", {}, None),
            ("DELETE", "/v1beta/webhooks/w1", {}, None),
        ]

    def test_an_update_with_nothing_to_change_is_refused(self, make_hook: MakeHook) -> None:
        service = Service(httpx.Response(200, json=webhook()))
        with pytest.raises(GeminiBatchInputError, match="nothing to update"):
            make_hook(service).update_webhook("webhooks/w1")
        assert service.seen == []

    @pytest.mark.parametrize("name", ["", "w1", "batches/w1", "webhooks/../x"])
    def test_a_name_that_is_not_a_webhook_name_is_refused(self, make_hook: MakeHook, name: str) -> None:
        service = Service(httpx.Response(200, json=webhook()))
        with pytest.raises(GeminiBatchInputError, match="webhook"):
            make_hook(service).get_webhook(name)
        assert service.seen == []

    def test_a_missing_webhook_is_not_found(self, make_hook: MakeHook) -> None:
        service = Service(error_reply(404, "NOT_FOUND", "webhook not found"))
        with pytest.raises(GeminiBatchNotFoundError):
            make_hook(service).delete_webhook("webhooks/gone")

    @pytest.mark.parametrize(
        ("revoke_previous", "behaviour"),
        [("after_24h", "revoke_previous_secrets_after_h24"), ("immediately", "revoke_previous_secrets_immediately")],
    )
    def test_rotate_returns_the_new_secret_hidden(
        self, make_hook: MakeHook, logs: Logs, revoke_previous: str, behaviour: str
    ) -> None:
        service = Service(httpx.Response(200, json={"secret": SECRET}))
        rotated = make_hook(service).rotate_webhook_signing_secret(
            "webhooks/w1",
            revoke_previous=revoke_previous,  # type: ignore[arg-type]
        )
        assert service.seen == [
            ("POST", "/v1beta/webhooks/w1:rotateSigningSecret", {}, {"revocation_behavior": behaviour})
        ]
        assert isinstance(rotated, RotatedSigningSecret)
        assert rotated.secret is not None
        assert rotated.secret.get_secret_value() == SECRET
        assert SECRET not in repr(rotated) + str(rotated) + rotated.model_dump_json() + logs()

    def test_rotate_refuses_an_unknown_revocation(self, make_hook: MakeHook) -> None:
        service = Service(httpx.Response(200, json={"secret": SECRET}))
        with pytest.raises(GeminiBatchInputError, match="revoke_previous"):
            make_hook(service).rotate_webhook_signing_secret("webhooks/w1", revoke_previous="never")  # type: ignore[arg-type]
        assert service.seen == []


class TestAsync:
    def test_alist_and_aget(self, make_hook: MakeHook) -> None:
        service = Service(
            httpx.Response(200, json={"webhooks": [webhook("a")], "nextPageToken": "t2"}),
            httpx.Response(200, json={"webhooks": [webhook("b")]}),
            httpx.Response(200, json=webhook("b")),
        )
        hook = make_hook(service)

        async def run() -> tuple[list[str], Webhook]:
            names = [item.name async for item in hook.alist_webhooks()]
            return names, await hook.aget_webhook("webhooks/b")

        names, got = asyncio.run(run())
        assert names == ["webhooks/a", "webhooks/b"]
        assert got.name == "webhooks/b"
        assert [(method, path) for method, path, _, _ in service.seen] == [
            ("GET", "/v1beta/webhooks"),
            ("GET", "/v1beta/webhooks"),
            ("GET", "/v1beta/webhooks/b"),
        ]


def test_the_batch_hook_is_a_webhooks_hook() -> None:
    assert issubclass(GeminiBatchHook, GeminiWebhooksHook)
