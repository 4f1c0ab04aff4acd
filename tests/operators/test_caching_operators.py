"""The cache operators, and the submit operator's cached_content= and max_input_tokens=, run against the emulator."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError, GeminiBatchNotFoundError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.operators import (
    GeminiCreateCachedContentOperator,
    GeminiDeleteCachedContentOperator,
    GeminiDownloadResultsOperator,
    GeminiSubmitBatchOperator,
)
from tests.airflow_flow import RecordingTaskInstance, requests, run_task

MODEL = "gemini-2.5-flash"
DOCUMENT = "the handbook says many things " * 40  # 200 tokens to the fake model


def _create_cache(ttl: float | timedelta | None = None) -> tuple[str, RecordingTaskInstance]:
    ti = RecordingTaskInstance()
    operator = GeminiCreateCachedContentOperator(
        task_id="cache", model=MODEL, contents=DOCUMENT, system_instruction="Be brief.", ttl=ttl
    )
    name, _ = run_task(operator, {"ti": ti})
    return name, ti


def test_the_create_operator_returns_the_cache_name_and_its_default_ttl_outlives_the_longest_wait(
    gemini_connection: EmulatorHandle,
) -> None:
    name, ti = _create_cache()
    assert name.startswith("cachedContents/")
    summary = ti.xcom["cached_content"]
    assert summary["name"] == name
    assert summary["token_count"] == 202
    cache = GeminiBatchHook().get_cached_content(name)
    assert cache.expire_time is not None
    assert cache.create_time is not None
    assert (cache.expire_time - cache.create_time) >= timedelta(hours=49) - timedelta(seconds=1)


def test_the_delete_operator_deletes_and_a_cache_already_gone_is_fine(gemini_connection: EmulatorHandle) -> None:
    name, _ = _create_cache(ttl=600)
    run_task(GeminiDeleteCachedContentOperator(task_id="cleanup", cached_content=name))
    with pytest.raises(GeminiBatchNotFoundError):
        GeminiBatchHook().get_cached_content(name)
    run_task(GeminiDeleteCachedContentOperator(task_id="cleanup", cached_content=name))  # 404: already gone
    with pytest.raises(GeminiBatchNotFoundError):
        run_task(GeminiDeleteCachedContentOperator(task_id="cleanup", cached_content=name, ignore_missing=False))


def test_a_submit_naming_a_cache_about_to_expire_fails_before_anything_is_uploaded(
    gemini_connection: EmulatorHandle,
) -> None:
    name, _ = _create_cache(ttl=60)
    operator = GeminiSubmitBatchOperator(task_id="submit", model=MODEL, requests=requests(3), cached_content=name)
    with pytest.raises(GeminiBatchInputError, match="cache_expiry_margin_hours"):
        run_task(operator)
    sent = [f"{r['method']} {r['path']}" for r in gemini_connection.control.requests()]
    assert [line for line in sent if "upload" in line or "batchGenerateContent" in line] == []
    assert gemini_connection.control.created_count() == 0


def test_a_submit_with_extend_cache_ttl_runs_the_job_on_the_cache_and_the_manifest_counts_cached_tokens(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    name, _ = _create_cache(ttl=60)
    source = tmp_path / "questions.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in requests(4)))
    submit = GeminiSubmitBatchOperator(
        task_id="submit",
        model=MODEL,
        input_path=str(source),
        cached_content=name,
        extend_cache_ttl=timedelta(hours=3),
        deferrable=False,
        poll_interval=0.05,
    )
    batch_name, _ = run_task(submit)
    manifest, _ = run_task(
        GeminiDownloadResultsOperator(task_id="download", batch_name=batch_name, destination=str(tmp_path / "out"))
    )
    assert manifest["usage"]["cachedContentTokenCount"] == 4 * 202
    assert manifest["tokens"] == {"prompt": 4, "cached": 4 * 202, "output": manifest["tokens"]["output"], "thinking": 0}
    assert manifest["cost"]["estimate"] is True
    assert manifest["cost"]["batch"] == pytest.approx(manifest["cost"]["interactive"] / 2)


def test_a_submit_over_max_input_tokens_fails_before_anything_is_uploaded(gemini_connection: EmulatorHandle) -> None:
    operator = GeminiSubmitBatchOperator(task_id="submit", model=MODEL, requests=requests(40), max_input_tokens=39)
    with pytest.raises(GeminiBatchInputError, match=r"about 40 input tokens .* over max_input_tokens=39"):
        run_task(operator)
    assert [r for r in gemini_connection.control.requests() if r["path"].startswith("/upload/")] == []
    assert gemini_connection.control.created_count() == 0


def test_a_submit_within_max_input_tokens_is_created(gemini_connection: EmulatorHandle) -> None:
    operator = GeminiSubmitBatchOperator(
        task_id="submit", model=MODEL, requests=requests(40), max_input_tokens=40, wait_for_completion=False
    )
    run_task(operator)
    assert gemini_connection.control.created_count() == 1
