"""A downstream run for a job already handled is harmless: the download skips results already complete.

Two paths announce a finished job (a webhook and the polling safety net), so the results DAG can run
twice for one job. The second download finds that job's complete results at the destination and
returns the same manifest without downloading anything; a partial, foreign or altered file is
downloaded over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator
from tests.airflow_flow import run_task


def _file_job(hook: GeminiBatchHook, tmp_path: Path, prefix: str = "k", count: int = 5) -> str:
    source = tmp_path / f"{prefix}.jsonl"
    lines = [{"key": f"{prefix}{i}", "request": {"contents": [{"parts": [{"text": f"hi {i}"}]}]}} for i in range(count)]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    batch = hook.create_batch("gemini-2.5-flash", input_file=hook.upload_file(source).name)
    hook.get_batch(batch.name)  # The first get that sees it SUCCEEDED writes the results.
    return batch.name


def _downloads(emulator: EmulatorHandle) -> int:
    return sum(count for call, count in emulator.control.request_counts().items() if call.endswith(":download"))


def _download(batch_name: str, destination: Any, **kwargs: Any) -> dict[str, Any]:
    operator = GeminiDownloadResultsOperator(task_id="d", batch_name=batch_name, destination=destination, **kwargs)
    manifest, _ = run_task(operator)
    assert isinstance(manifest, dict)
    return manifest


def _keys(path: str) -> list[str]:
    return sorted(json.loads(line)["key"] for line in Path(path).read_bytes().splitlines())


@pytest.mark.parametrize("as_uri", [False, True], ids=["local", "uri"])
@pytest.mark.parametrize("destination", ["out", "out/results.jsonl", "out/results.jsonl.gz"])
def test_a_second_download_of_complete_results_downloads_nothing_and_returns_the_same_manifest(
    gemini_connection: EmulatorHandle,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    destination: str,
    as_uri: bool,
) -> None:
    name = _file_job(GeminiBatchHook(), tmp_path)
    target = f"file://{tmp_path / destination}" if as_uri else str(tmp_path / destination)
    first = _download(name, target)
    before = _downloads(gemini_connection)
    capfd.readouterr()
    second = _download(name, target)
    assert second == first
    assert _downloads(gemini_connection) == before, "no results were downloaded again"
    assert "already complete" in capfd.readouterr().out


def test_inline_results_are_skipped_too(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    hook = GeminiBatchHook()
    request = {"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}
    name = hook.create_batch("gemini-2.5-flash", requests=[request]).name
    hook.get_batch(name)
    first = _download(name, str(tmp_path / "out"))
    results = Path(first["path"])
    stamp = results.stat().st_mtime_ns
    assert _download(name, str(tmp_path / "out")) == first
    assert results.stat().st_mtime_ns == stamp, "the file was not written again"


def test_another_jobs_results_at_the_same_path_are_replaced(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    hook = GeminiBatchHook()
    monday, tuesday = _file_job(hook, tmp_path, "mon"), _file_job(hook, tmp_path, "tue")
    destination = str(tmp_path / "out" / "results.jsonl")
    _download(monday, destination)
    manifest = _download(tuesday, destination)
    assert manifest["batch_name"] == tuesday
    assert _keys(destination) == [f"tue{i}" for i in range(5)]
    assert _download(tuesday, destination) == manifest


def test_a_file_not_written_by_a_complete_download_is_replaced(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    name = _file_job(GeminiBatchHook(), tmp_path)
    destination = tmp_path / "out" / "results.jsonl"
    destination.parent.mkdir()
    destination.write_text('{"key": "k0"}\n')  # A copy cut short, or a file of the user's.
    before = _downloads(gemini_connection)
    manifest = _download(name, str(destination))
    assert _downloads(gemini_connection) == before + 1
    assert manifest["result_count"] == 5
    assert _keys(str(destination)) == [f"k{i}" for i in range(5)]


def test_results_changed_after_the_download_are_downloaded_again(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    name = _file_job(GeminiBatchHook(), tmp_path)
    destination = tmp_path / "out" / "results.jsonl"
    first = _download(name, str(destination))
    lines = destination.read_bytes().splitlines(keepends=True)
    destination.write_bytes(b"".join(lines[:2]))  # Truncated by something else.
    before = _downloads(gemini_connection)
    assert _download(name, str(destination)) == first
    assert _downloads(gemini_connection) == before + 1
    assert len(_keys(str(destination))) == 5


def test_other_expected_keys_are_checked_again(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    name = _file_job(GeminiBatchHook(), tmp_path, count=3)
    destination = str(tmp_path / "out")
    _download(name, destination)
    before = _downloads(gemini_connection)
    manifest = _download(name, destination, expected_keys=["k0", "k1", "k2"])
    assert _downloads(gemini_connection) == before + 1, "a check the first download did not make is made now"
    assert manifest["expected_count"] == 3


def test_skip_if_complete_false_downloads_again(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    name = _file_job(GeminiBatchHook(), tmp_path)
    _download(name, str(tmp_path / "out"))
    before = _downloads(gemini_connection)
    _download(name, str(tmp_path / "out"), skip_if_complete=False)
    assert _downloads(gemini_connection) == before + 1
