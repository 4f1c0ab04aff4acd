"""Context caches, token counting and the checks a submit runs with them, against the emulator on loopback."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError, GeminiBatchNotFoundError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook

MODEL = "gemini-2.5-flash"
DOCUMENT = "alpha beta gamma delta " * 100  # 400 tokens to the fake model


def request(key: str, text: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "request": {"contents": [{"role": "user", "parts": [{"text": text}]}], **fields}}


def uploads(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    return [r for r in emulator.control.requests() if r["path"].startswith("/upload/")]


def test_a_cache_is_created_read_listed_extended_and_deleted(hook: GeminiBatchHook) -> None:
    cache = hook.create_cached_content(
        MODEL, contents=DOCUMENT, system_instruction="Answer briefly.", ttl=600, display_name="doc"
    )
    assert cache.name.startswith("cachedContents/")
    assert cache.model == f"models/{MODEL}"
    assert cache.token_count == 402
    assert hook.get_cached_content(cache.name).display_name == "doc"
    other = hook.create_cached_content(MODEL, contents=[DOCUMENT], ttl=timedelta(minutes=5))
    assert [found.name for found in hook.list_cached_contents(page_size=1)] == [cache.name, other.name]

    extended = hook.update_cached_content(cache.name, ttl=timedelta(hours=3))
    assert extended.expire_time is not None
    assert cache.expire_time is not None
    assert (extended.expire_time - cache.expire_time).total_seconds() > 2 * 3600

    hook.delete_cached_content(cache.name)
    with pytest.raises(GeminiBatchNotFoundError):
        hook.get_cached_content(cache.name)
    with pytest.raises(GeminiBatchNotFoundError):
        hook.delete_cached_content(cache.name)


async def test_the_async_twins_read_caches(hook: GeminiBatchHook) -> None:
    cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=600)
    assert (await hook.aget_cached_content(cache.name)).token_count == 400
    assert [found.name async for found in hook.alist_cached_contents()] == [cache.name]
    await hook.aclose()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"contents": DOCUMENT}, "exactly one of ttl"),
        ({"contents": DOCUMENT, "ttl": 60, "expire_time": "2030-01-01T00:00:00Z"}, "exactly one of ttl"),
        ({"ttl": 60}, "needs contents or a system_instruction"),
        ({"contents": DOCUMENT, "ttl": -5}, "not a positive duration"),
    ],
)
def test_a_bad_cache_create_is_refused_before_any_request(
    hook: GeminiBatchHook, gemini_connection: EmulatorHandle, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(GeminiBatchInputError, match=message):
        hook.create_cached_content(MODEL, **arguments)
    assert gemini_connection.control.requests() == []


def test_count_tokens_counts_contents_and_whole_requests(hook: GeminiBatchHook) -> None:
    assert hook.count_tokens(MODEL, contents="one two three").total_tokens == 3
    cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=600)
    counted = hook.count_tokens(
        MODEL, generate_content_request={**request("k", "one two")["request"], "cachedContent": cache.name}
    )
    assert (counted.total_tokens, counted.cached_content_token_count) == (402, 400)


class TestCacheBeforeTheJob:
    def test_a_cache_expiring_within_the_margin_is_refused_and_nothing_is_uploaded(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle
    ) -> None:
        cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=30)
        with pytest.raises(GeminiBatchInputError) as refused:
            hook.prepare_submit_input(model=MODEL, requests=[request("a", "hi")], cached_content=cache.name)
        message = str(refused.value)
        assert cache.name in message
        assert "cache_expiry_margin_hours" in message
        assert "extend_cache_ttl" in message
        assert "Nothing was uploaded" in message
        assert uploads(gemini_connection) == []

    def test_extend_cache_ttl_extends_it_and_the_requests_use_it(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle
    ) -> None:
        cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=30)
        prepared = hook.prepare_submit_input(
            model=MODEL,
            requests=[request("a", "hi"), request("b", "there", cachedContent="cachedContents/mine")],
            cached_content=cache.name,
            extend_cache_ttl=timedelta(hours=2),
        )
        extended = hook.get_cached_content(cache.name)
        assert extended.expire_time is not None
        assert cache.expire_time is not None
        assert (extended.expire_time - cache.expire_time).total_seconds() > 7000
        assert prepared.requests is not None
        assert [item["request"]["cachedContent"] for item in prepared.requests] == [cache.name, "cachedContents/mine"]

    def test_the_margin_is_read_in_hours_from_the_provider_settings(
        self, hook: GeminiBatchHook, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=timedelta(minutes=90))
        hook.cache_for_job(cache.name, MODEL)  # 90 minutes outlive the default hour.
        monkeypatch.setenv("AIRFLOW__GEMINI_BATCH__CACHE_EXPIRY_MARGIN_HOURS", "2")
        with pytest.raises(GeminiBatchInputError, match=r"under the 7200 s a job may wait"):
            hook.cache_for_job(cache.name, MODEL)

    def test_an_extension_shorter_than_the_margin_is_refused(self, hook: GeminiBatchHook) -> None:
        cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=30)
        with pytest.raises(GeminiBatchInputError, match="extend_cache_ttl=60 is too short"):
            hook.cache_for_job(cache.name, MODEL, margin=3600, extend_ttl=60)

    def test_a_cache_of_another_model_or_a_deleted_one_is_refused(self, hook: GeminiBatchHook) -> None:
        cache = hook.create_cached_content("gemini-2.5-pro", contents=DOCUMENT, ttl=7200)
        with pytest.raises(GeminiBatchInputError, match=r"made for models/gemini-2\.5-pro"):
            hook.cache_for_job(cache.name, MODEL)
        hook.delete_cached_content(cache.name)
        with pytest.raises(GeminiBatchInputError, match="does not exist"):
            hook.cache_for_job(cache.name, "gemini-2.5-pro")

    def test_a_cache_that_expires_after_the_check_fails_its_requests_in_the_job(self, hook: GeminiBatchHook) -> None:
        # What the margin protects against: the service fails each request naming a gone cache.
        cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=0.3)
        time.sleep(0.5)
        batch = hook.create_batch(MODEL, requests=[request("a", "hi", cachedContent=cache.name)])
        (result,) = list(hook.iter_results(batch.name))
        assert result.error is not None

    def test_a_jsonl_input_is_rewritten_on_its_way_to_the_upload_and_the_user_file_is_untouched(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle, tmp_path: Path
    ) -> None:
        cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=7200)
        source = tmp_path / "questions.jsonl"
        rows = [request("a", "first question"), request("b", "second", cachedContent="cachedContents/own")]
        original = "".join(json.dumps(row) + "\n" for row in rows).encode()
        source.write_bytes(original)

        prepared = hook.prepare_submit_input(model=MODEL, input_path=str(source), cached_content=cache.name)

        assert prepared.input_file is not None
        uploaded = tmp_path / "uploaded.jsonl"
        hook.download_file(prepared.input_file, str(uploaded))
        lines = [json.loads(line) for line in uploaded.read_bytes().splitlines()]
        assert [line["request"]["cachedContent"] for line in lines] == [cache.name, "cachedContents/own"]
        assert hook.get_file(prepared.input_file).display_name == "questions.jsonl"
        assert source.read_bytes() == original

    def test_an_object_storage_input_is_rewritten_too(self, hook: GeminiBatchHook, tmp_path: Path) -> None:
        cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=7200)
        source = tmp_path / "remote.jsonl"
        source.write_text(json.dumps(request("a", "first")) + "\n")
        prepared = hook.prepare_submit_input(model=MODEL, input_path=f"file://{source}", cached_content=cache.name)
        assert prepared.input_file is not None
        uploaded = tmp_path / "uploaded.jsonl"
        hook.download_file(prepared.input_file, str(uploaded))
        assert json.loads(uploaded.read_bytes())["request"]["cachedContent"] == cache.name

    def test_a_bad_line_is_still_named_by_its_number_after_the_rewrite(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle, tmp_path: Path
    ) -> None:
        cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=7200)
        source = tmp_path / "bad.jsonl"
        source.write_text(json.dumps(request("a", "ok")) + "\n\n{broken\n")
        with pytest.raises(GeminiBatchInputError, match="line 3: not valid JSON"):
            hook.prepare_submit_input(model=MODEL, input_path=str(source), cached_content=cache.name)
        assert uploads(gemini_connection) == []

    def test_an_embeddings_job_cannot_take_a_cache(self, hook: GeminiBatchHook) -> None:
        rows = [{"key": "a", "request": {"content": {"parts": [{"text": "x"}]}}}]
        with pytest.raises(GeminiBatchInputError, match="embeddings job cannot read a context cache"):
            hook.prepare_submit_input(model=MODEL, requests=rows, kind="embed", cached_content="cachedContents/x")

    def test_an_uploaded_input_file_cannot_take_a_cache(self, hook: GeminiBatchHook) -> None:
        with pytest.raises(GeminiBatchInputError, match="Pass the JSONL file as input_path"):
            hook.prepare_submit_input(model=MODEL, input_file="files/abc", cached_content="cachedContents/x")


class TestInputTokenBudget:
    def test_a_small_input_is_counted_exactly(self, hook: GeminiBatchHook) -> None:
        rows = [request(f"k{i}", "word " * (i + 1)) for i in range(10)]
        estimate = hook.estimate_input_tokens(MODEL, requests=rows)
        assert estimate.exact
        assert estimate.tokens == sum(range(1, 11))

    def test_a_large_input_is_extrapolated_by_bytes_within_a_few_percent(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle, tmp_path: Path
    ) -> None:
        source = tmp_path / "many.jsonl"
        rows = [request(f"k{i}", "lorem ipsum dolor " * (5 + i % 20)) for i in range(500)]
        source.write_text("".join(json.dumps(row) + "\n" for row in rows))
        truth = sum(3 * (5 + i % 20) for i in range(500))

        estimate = hook.estimate_input_tokens(MODEL, input_path=str(source))

        assert not estimate.exact
        assert estimate.request_count == 500
        assert abs(estimate.tokens - truth) / truth < 0.10
        counted = gemini_connection.control.request_counts().get(f"POST /v1beta/models/{MODEL}:countTokens")
        assert counted == 16, "a sample is counted, not every request"

    def test_an_input_over_budget_is_refused_and_nothing_is_uploaded_or_created(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle, tmp_path: Path
    ) -> None:
        source = tmp_path / "big.jsonl"
        source.write_text("".join(json.dumps(request(f"k{i}", "word " * 100)) + "\n" for i in range(50)))
        with pytest.raises(GeminiBatchInputError) as refused:
            hook.prepare_submit_input(model=MODEL, input_path=str(source), max_input_tokens=4_000)
        message = str(refused.value)
        assert re.search(r"about 5,0\d\d input tokens \(estimated from 16 of its 50 requests", message)
        assert "max_input_tokens=4,000" in message
        assert "Nothing was uploaded" in message
        assert uploads(gemini_connection) == []
        assert gemini_connection.control.created_count() == 0

    def test_cache_tokens_count_once_per_request(self, hook: GeminiBatchHook) -> None:
        cache = hook.create_cached_content(MODEL, contents=DOCUMENT, ttl=7200)
        rows = [request(f"k{i}", "two words") for i in range(3)]
        with pytest.raises(GeminiBatchInputError, match="about 1,206 input tokens"):
            hook.prepare_submit_input(model=MODEL, requests=rows, cached_content=cache.name, max_input_tokens=1_000)
        prepared = hook.prepare_submit_input(
            model=MODEL, requests=rows, cached_content=cache.name, max_input_tokens=1_206
        )
        assert prepared.requests is not None
