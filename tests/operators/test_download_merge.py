"""GeminiDownloadResultsOperator over the shards of one input: one results set and manifest, every key counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchIncompleteResults
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator
from tests.airflow_flow import run_task

KEYS = [f"k{index}" for index in range(7)]


def _sharded_jobs(tmp_path: Path) -> tuple[list[str], list[str]]:
    """Split 7 requests into shards of 3 and run one job per shard; return (shard paths, batch names)."""
    hook = GeminiBatchHook()
    rows = [{"key": key, "request": {"contents": [{"parts": [{"text": key}]}]}} for key in KEYS]
    paths = hook.split_input(rows, tmp_path / "shards", max_requests=3)
    names = [hook.create_batch("gemini-2.5-flash", input_file=hook.upload_file(path).name).name for path in paths]
    return paths, names


def _merge(
    names: list[Any], paths: list[str], destination: Path, *, destination_uri: bool = False, **kwargs: Any
) -> dict[str, Any]:
    where = f"file://{destination}" if destination_uri else str(destination)
    operator = GeminiDownloadResultsOperator(
        task_id="merge", batch_name=names, input_paths=paths, destination=where, **kwargs
    )
    manifest, _ = run_task(operator)
    return manifest  # type: ignore[no-any-return]


def test_a_list_of_batches_is_written_as_one_file_per_shard_with_one_manifest(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    paths, names = _sharded_jobs(tmp_path)

    manifest = _merge(names, paths, tmp_path / "results")

    assert manifest["shard_count"] == 3
    assert [shard["result_count"] for shard in manifest["shards"]] == [3, 3, 1]
    assert [shard["batch_name"] for shard in manifest["shards"]] == names
    assert (manifest["result_count"], manifest["expected_count"], manifest["missing_count"]) == (7, 7, 0)
    assert manifest["missing_keys"] == []
    keys = [
        json.loads(line)["key"]
        for shard in manifest["shards"]
        for line in Path(shard["path"]).read_bytes().splitlines()
    ]
    assert sorted(keys) == sorted(KEYS), "every key once"
    on_disk = json.loads((tmp_path / "results" / "manifest.json").read_text())
    assert on_disk == manifest


def test_a_shard_without_results_fails_the_merge_naming_its_keys(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    paths, names = _sharded_jobs(tmp_path)
    gemini_connection.control.set_state(names[1], "FAILED")

    with pytest.raises(GeminiBatchIncompleteResults) as raised:
        _merge(names, paths, tmp_path / "results")

    message = str(raised.value)
    assert "read 4 of 7 results; 3 missing" in message
    assert "k3" in message
    assert names[1] in message
    manifest = json.loads((tmp_path / "results" / "manifest.json").read_text())
    assert manifest["missing_keys"] == ["k3", "k4", "k5"]
    assert manifest["complete"] is False


def test_missing_results_within_the_policy_are_listed_and_the_task_succeeds(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    paths, names = _sharded_jobs(tmp_path)
    gemini_connection.control.set_state(names[2], "FAILED")

    manifest = _merge([*names[:2], None], paths, tmp_path / "results", max_missing_results=1)

    assert manifest["missing_keys"] == ["k6"]
    assert (manifest["result_count"], manifest["missing_count"], manifest["complete"]) == (6, 1, False)
    assert manifest["shards"][2]["error"]


def test_without_input_paths_each_shard_is_checked_against_its_request_count(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    _paths, names = _sharded_jobs(tmp_path)
    operator = GeminiDownloadResultsOperator(task_id="merge", batch_name=names, destination=str(tmp_path / "out"))

    manifest, _ = run_task(operator)

    assert (manifest["result_count"], manifest["expected_count"], manifest["missing_count"]) == (7, 7, 0)


def test_object_storage_shards_and_destination(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    paths, names = _sharded_jobs(tmp_path)

    manifest = _merge(names, [f"file://{path}" for path in paths], tmp_path / "uri", destination_uri=True)

    assert (manifest["result_count"], manifest["missing_count"], manifest["complete"]) == (7, 0, True)
