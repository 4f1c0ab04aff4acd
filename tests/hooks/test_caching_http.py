"""The requests the caching and token-counting methods send, seen at the HTTP boundary (``httpx.MockTransport``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook

from .conftest import Handler

CACHE = {
    "name": "cachedContents/c1",
    "model": "models/gemini-2.5-flash",
    "expireTime": "2030-01-01T00:00:00.123456789Z",
    "usageMetadata": {"totalTokenCount": 4096},
}


def recording(sent: list[httpx.Request], reply: dict[str, object]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=reply)

    return handle


def test_a_cache_create_sends_camel_case_fields_and_a_duration(make_hook: Callable[[Handler], GeminiBatchHook]) -> None:
    sent: list[httpx.Request] = []
    hook = make_hook(recording(sent, CACHE))

    cache = hook.create_cached_content(
        "gemini-2.5-flash",
        contents=["a document", {"role": "user", "parts": [{"text": "more"}]}],
        system_instruction="Be brief.",
        tools=[{"googleSearch": {}}],
        ttl=timedelta(minutes=90),
        display_name="doc",
    )

    (request,) = sent
    assert (request.method, request.url.path) == ("POST", "/v1beta/cachedContents")
    assert json.loads(request.content) == {
        "model": "models/gemini-2.5-flash",
        "contents": [
            {"role": "user", "parts": [{"text": "a document"}]},
            {"role": "user", "parts": [{"text": "more"}]},
        ],
        "systemInstruction": {"role": "user", "parts": [{"text": "Be brief."}]},
        "tools": [{"googleSearch": {}}],
        "displayName": "doc",
        "ttl": "5400s",
    }
    assert cache.token_count == 4096
    assert cache.expire_time == datetime(2030, 1, 1, 0, 0, 0, 123456, tzinfo=timezone.utc)


def test_an_update_sends_only_the_expiry_with_its_update_mask(make_hook: Callable[[Handler], GeminiBatchHook]) -> None:
    sent: list[httpx.Request] = []
    hook = make_hook(recording(sent, CACHE))

    hook.update_cached_content("cachedContents/c1", expire_time=datetime(2030, 1, 1, tzinfo=timezone.utc))

    (request,) = sent
    assert (request.method, request.url.path) == ("PATCH", "/v1beta/cachedContents/c1")
    assert request.url.params["updateMask"] == "expire_time"
    assert json.loads(request.content) == {"expireTime": "2030-01-01T00:00:00Z"}


def test_count_tokens_wraps_a_request_with_its_model(make_hook: Callable[[Handler], GeminiBatchHook]) -> None:
    sent: list[httpx.Request] = []
    hook = make_hook(recording(sent, {"totalTokens": 7, "cachedContentTokenCount": 4}))

    counted = hook.count_tokens("gemini-2.5-flash", generate_content_request={"contents": [{"parts": [{"text": "x"}]}]})

    (request,) = sent
    assert request.url.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert json.loads(request.content) == {
        "generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": [{"parts": [{"text": "x"}]}]}
    }
    assert (counted.total_tokens, counted.cached_content_token_count) == (7, 4)


@pytest.mark.parametrize("bad", ["", "files/abc", "cachedContents/../x"])
def test_a_cache_name_is_checked_before_any_request(make_hook: Callable[[Handler], GeminiBatchHook], bad: str) -> None:
    sent: list[httpx.Request] = []
    hook = make_hook(recording(sent, CACHE))
    with pytest.raises(GeminiBatchInputError, match="cachedContents/<id>"):
        hook.get_cached_content(bad)
    assert sent == []
