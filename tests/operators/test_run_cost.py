"""What a run cost, in the download manifest and its log line: tokens by kind, the batch and interactive estimate."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator
from airflow_provider_gemini_batch.pricing import BUILT_IN_PRICES
from tests.airflow_flow import requests, run_task


def _finished(hook: GeminiBatchHook, model: str, count: int) -> str:
    batch = hook.create_batch(model, requests=requests(count))
    while not hook.get_batch(batch.name).state.is_terminal:
        time.sleep(0.05)
    return batch.name


def test_the_download_manifest_and_its_log_line_give_tokens_by_kind_and_the_cost(
    gemini_connection: EmulatorHandle,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = _finished(GeminiBatchHook(), "gemini-2.5-flash-lite", 3)
    operator = GeminiDownloadResultsOperator(task_id="download", batch_name=name, destination=str(tmp_path))
    caplog.set_level(logging.INFO)
    manifest, _ = run_task(operator)
    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err  # stdlib logging and Airflow's structlog output

    # Each of the 3 prompts is one word ("q0"); each answer "Echo: qN" is two.
    assert manifest["tokens"] == {"prompt": 3, "cached": 0, "output": 6, "thinking": 0}
    price = BUILT_IN_PRICES["gemini-2.5-flash-lite"]
    interactive = (3 * price.input + 6 * price.output) / 1_000_000
    assert manifest["cost"] == {
        "currency": "USD",
        "batch": pytest.approx(interactive / 2),
        "interactive": pytest.approx(interactive),
        "saved": pytest.approx(interactive / 2),
        "prices_as_of": price.prices_as_of,
        "estimate": True,
    }
    lines = [line for line in logged.splitlines() if "Estimated cost" in line]
    assert lines, "the run's cost is logged"  # Airflow 3.0 captures the one line twice: stdlib and structlog.
    for line in lines:
        assert name in line
        assert "an estimate" in line
        assert "prompt 3, cached 0, output 6, thinking 0" in line


def test_a_model_without_a_price_has_a_null_cost(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    name = _finished(GeminiBatchHook(), "gemini-3-flash-preview", 1)
    manifest, _ = run_task(GeminiDownloadResultsOperator(task_id="d", batch_name=name, destination=str(tmp_path)))
    assert manifest["cost"] is None
    assert manifest["tokens"]["prompt"] == 1


def test_a_configured_price_table_is_used(
    gemini_connection: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = {"gemini-3-flash-preview": {"input": 1_000_000, "output": 0, "prices_as_of": "2027-02-03"}}
    monkeypatch.setenv("AIRFLOW__GEMINI_BATCH__PRICE_TABLE", json.dumps(table))
    name = _finished(GeminiBatchHook(), "gemini-3-flash-preview", 2)
    manifest, _ = run_task(GeminiDownloadResultsOperator(task_id="d", batch_name=name, destination=str(tmp_path)))
    assert manifest["cost"]["interactive"] == pytest.approx(2.0)  # 2 prompt tokens at $1 each
    assert manifest["cost"]["prices_as_of"] == "2027-02-03"


def test_the_manifest_of_several_shards_sums_their_tokens_and_costs(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    hook = GeminiBatchHook()
    names = [_finished(hook, "gemini-2.5-flash", 2), _finished(hook, "gemini-2.5-flash", 3)]
    manifest, _ = run_task(GeminiDownloadResultsOperator(task_id="d", batch_name=names, destination=str(tmp_path)))
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert written["tokens"] == manifest["tokens"] == {"prompt": 5, "cached": 0, "output": 10, "thinking": 0}
    shard_costs = [shard["cost"]["batch"] for shard in written["shards"]]
    assert written["cost"]["batch"] == pytest.approx(sum(shard_costs))
    assert written["cost"]["estimate"] is True


def test_a_malformed_price_table_leaves_the_cost_null_and_says_why_without_failing_the_download(
    gemini_connection: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__GEMINI_BATCH__PRICE_TABLE", '{"gemini-2.5-flash": {"inptu": 1}}')
    name = _finished(GeminiBatchHook(), "gemini-2.5-flash", 1)
    manifest, _ = run_task(GeminiDownloadResultsOperator(task_id="d", batch_name=name, destination=str(tmp_path)))
    assert manifest["cost"] is None
    assert "inptu" in manifest["cost_error"]
    assert Path(manifest["path"]).is_file()
