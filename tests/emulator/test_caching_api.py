"""Context caches and token counting (docs/protocol.md "Context caching", "Token counting"), checked with google-genai.

The SDK's ``client.caches`` and ``client.models.count_tokens`` run unmodified against the emulator:
create, get, list page by page, update the TTL, delete; a cache is 404 after a delete or once it
expires; a batch request that names a cache reports ``cachedContentTokenCount``.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from ._support import MODEL, create, prompt, wait_for_state

DOCUMENT = "the quick brown fox jumps over the lazy dog " * 50  # 450 words: 450 tokens to the fake model


def _cache(client: genai.Client, ttl: str = "600s", **config: Any) -> types.CachedContent:
    return client.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[types.Part(text=DOCUMENT)])],
            system_instruction="Answer from the document only.",
            ttl=ttl,
            **config,
        ),
    )


def test_the_sdk_creates_gets_lists_updates_and_deletes_a_cache(client: genai.Client) -> None:
    created = _cache(client, display_name="handbook")
    assert created.name is not None
    assert created.name.startswith("cachedContents/")
    assert created.model == f"models/{MODEL}"
    assert created.usage_metadata is not None
    assert created.usage_metadata.total_token_count == 450 + 5
    assert created.expire_time is not None
    assert created.create_time is not None
    assert 590 <= (created.expire_time - created.create_time).total_seconds() <= 600

    assert client.caches.get(name=created.name).display_name == "handbook"
    second = _cache(client)
    listed = [cache.name for cache in client.caches.list(config={"page_size": 1})]
    assert listed == [created.name, second.name]

    updated = client.caches.update(name=created.name, config=types.UpdateCachedContentConfig(ttl="7200s"))
    assert updated.expire_time is not None
    assert created.expire_time is not None
    assert (updated.expire_time - created.expire_time).total_seconds() > 6000

    client.caches.delete(name=created.name)
    with pytest.raises(errors.ClientError) as gone:
        client.caches.get(name=created.name)
    assert gone.value.code == 404
    assert [cache.name for cache in client.caches.list()] == [second.name]


def test_a_cache_is_404_once_its_ttl_has_passed(client: genai.Client) -> None:
    created = _cache(client, ttl="0.3s")
    assert created.name is not None
    time.sleep(0.5)
    with pytest.raises(errors.ClientError) as expired:
        client.caches.get(name=created.name)
    assert expired.value.code == 404
    assert list(client.caches.list()) == []


def test_a_cache_on_an_unknown_model_or_with_both_ttl_and_expire_time_is_refused(api: httpx.Client) -> None:
    contents = [prompt(DOCUMENT)]
    unknown = api.post("/v1beta/cachedContents", json={"model": "models/nope", "contents": contents})
    both = api.post(
        "/v1beta/cachedContents",
        json={"model": f"models/{MODEL}", "contents": contents, "ttl": "60s", "expireTime": "2030-01-01T00:00:00Z"},
    )
    assert (unknown.status_code, both.status_code) == (404, 400)


def test_count_tokens_is_deterministic_and_adds_a_named_cache(client: genai.Client, api: httpx.Client) -> None:
    counted = client.models.count_tokens(model=MODEL, contents="one two three four")
    assert counted.total_tokens == 4
    cache = _cache(client)
    with_cache = api.post(
        f"/v1beta/models/{MODEL}:countTokens",
        json={"generateContentRequest": {"model": f"models/{MODEL}", **prompt("one two"), "cachedContent": cache.name}},
    ).json()
    assert with_cache == {"totalTokens": 2 + 455, "cachedContentTokenCount": 455}


def test_a_batch_request_naming_a_cache_reports_cached_tokens_and_a_gone_cache_fails_the_request(
    client: genai.Client, api: httpx.Client
) -> None:
    cache = _cache(client)
    gone = _cache(client)
    assert gone.name is not None
    client.caches.delete(name=gone.name)
    items = [
        {"request": {**prompt("what does the fox do"), "cachedContent": cache.name}, "metadata": {"key": "cached"}},
        {"request": prompt("no cache here"), "metadata": {"key": "plain"}},
        {"request": {**prompt("too late"), "cachedContent": gone.name}, "metadata": {"key": "gone"}},
    ]
    operation = create(api, "v1beta", {"requests": {"requests": items}})
    done = wait_for_state(api, "v1beta", operation["name"], "BATCH_STATE_SUCCEEDED")
    responses = done["response"]["inlinedResponses"]["inlinedResponses"]
    by_key = {item["metadata"]["key"]: item for item in responses}
    assert by_key["cached"]["response"]["usageMetadata"]["cachedContentTokenCount"] == 455
    assert by_key["cached"]["response"]["usageMetadata"]["promptTokenCount"] == 5 + 455
    assert "cachedContentTokenCount" not in by_key["plain"]["response"]["usageMetadata"]
    assert by_key["gone"]["error"]["status"] == "INVALID_ARGUMENT"
