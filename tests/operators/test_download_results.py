"""GeminiDownloadResultsOperator's output: one JSON object per request, the service's line kept intact."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchConnectionError, GeminiBatchIncompleteResults
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.idempotency import idempotency_key, keyed_display_name
from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator
from tests.airflow_flow import run_task

FAIL = "[[fail]]"  # The emulator's failure marker: the fake model rejects the request.


def _request(key: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "request": {"contents": [{"parts": [{"text": text}]}]}, **extra}


def _download(hook: GeminiBatchHook, batch_name: str, tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    hook.get_batch(batch_name)  # The first get that sees it SUCCEEDED writes the results.
    operator = GeminiDownloadResultsOperator(task_id="d", batch_name=batch_name, destination=str(tmp_path))
    manifest, _ = run_task(operator)
    lines = Path(manifest["path"]).read_bytes().splitlines()
    return manifest, [json.loads(line) for line in lines]


def test_file_results_keep_the_services_line_and_add_text_and_usage(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    hook = GeminiBatchHook()
    source = tmp_path / "in.jsonl"
    rows = [_request("a", "hello there", ticket="T-1"), _request("b", f"refuse {FAIL}", ticket="T-2")]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    uploaded = hook.upload_file(source)
    batch = hook.create_batch("gemini-2.5-flash", input_file=uploaded.name)
    results = {result.key: result for result in hook.iter_results(hook.get_batch(batch.name))}

    manifest, lines = _download(hook, batch.name, tmp_path / "out")

    assert (manifest["result_count"], manifest["succeeded_count"], manifest["failed_count"]) == (2, 1, 1)
    by_key = {line["key"]: line for line in lines}
    good, bad = by_key["a"], by_key["b"]
    assert good["response"] == results["a"].response, "the response is passed through untouched"
    assert good["text"] == results["a"].text
    assert good["text"]
    assert good["usage"] == results["a"].usage
    assert good["usage"]["totalTokenCount"] > 0
    assert good["ticket"] == "T-1", "fields the service echoes from the input line are kept"
    assert FAIL in bad["error"]["message"]
    assert "response" not in bad
    assert (bad["text"], bad["usage"], bad["ticket"]) == (None, {}, "T-2")
    assert manifest["usage"]["totalTokenCount"] == good["usage"]["totalTokenCount"]


def _file_job(hook: GeminiBatchHook, tmp_path: Path, count: int = 10) -> str:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(_request(f"k{index}", f"hello {index}")) + "\n" for index in range(count)))
    batch = hook.create_batch("gemini-2.5-flash", input_file=hook.upload_file(source).name)
    hook.get_batch(batch.name)  # The first get that sees it SUCCEEDED writes the results.
    return batch.name


def test_a_results_file_that_ends_early_is_read_on_and_the_manifest_counts_every_result(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    hook = GeminiBatchHook()
    name = _file_job(hook, tmp_path)
    gemini_connection.control.inject_fault("end_download_early", after_lines=6)
    manifest, lines = _download(hook, name, tmp_path / "out")
    assert sorted(line["key"] for line in lines) == sorted(f"k{index}" for index in range(10))
    counts = ("expected_count", "result_count", "succeeded_count", "failed_count", "missing_count")
    assert [manifest[count] for count in counts] == [10, 10, 10, 0, 0]


@pytest.mark.parametrize("as_uri", [False, True])
def test_results_still_missing_fail_the_task_and_leave_no_file(
    no_retry_connection: EmulatorHandle, tmp_path: Path, as_uri: bool
) -> None:
    hook = GeminiBatchHook()
    name = _file_job(hook, tmp_path)
    no_retry_connection.control.inject_fault("end_download_early", after_lines=6)
    folder = tmp_path / "out"
    destination: Any = ObjectStoragePath(f"file://{folder}") if as_uri else str(folder)
    operator = GeminiDownloadResultsOperator(task_id="d", batch_name=name, destination=destination)
    with pytest.raises(GeminiBatchIncompleteResults, match=r"read 6 of 10 results; 4 missing") as raised:
        run_task(operator)
    assert raised.value.missing_count == 4
    assert list(folder.iterdir()) == [], "no results file, and no temporary file either"


def test_expected_keys_name_the_missing_ones(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    hook = GeminiBatchHook()
    name = _file_job(hook, tmp_path, count=3)
    operator = GeminiDownloadResultsOperator(
        task_id="d", batch_name=name, destination=str(tmp_path / "out"), expected_keys=["k0", "k1", "k2", "k3"]
    )
    with pytest.raises(GeminiBatchIncompleteResults, match=r"read 3 of 4 results; 1 missing \(keys 'k3'\)"):
        run_task(operator)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_download_that_keeps_dropping_leaves_no_file(no_retry_connection: EmulatorHandle, tmp_path: Path) -> None:
    hook = GeminiBatchHook()
    name = _file_job(hook, tmp_path)
    no_retry_connection.control.inject_fault("drop_download", after_bytes=500, count=5)
    operator = GeminiDownloadResultsOperator(task_id="d", batch_name=name, destination=str(tmp_path / "out"))
    with pytest.raises(GeminiBatchConnectionError):
        run_task(operator)
    assert list((tmp_path / "out").iterdir()) == []


def test_inline_results_are_written_in_the_same_shape(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    hook = GeminiBatchHook()
    batch = hook.create_batch("gemini-2.5-flash", requests=[_request("a", "hi"), _request("b", FAIL)])
    manifest, lines = _download(hook, batch.name, tmp_path)
    assert manifest["succeeded_count"] == 1
    assert sorted(lines, key=lambda line: str(line["key"]))[0].keys() == {"key", "text", "response", "usage"}
    assert any("error" in line and line["usage"] == {} for line in lines)


def test_a_destination_ending_in_jsonl_gz_is_one_gzip_file(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    hook = GeminiBatchHook()
    name = _file_job(hook, tmp_path)
    destination = tmp_path / "out" / "taglines.jsonl.gz"
    operator = GeminiDownloadResultsOperator(task_id="d", batch_name=name, destination=str(destination))
    manifest, _ = run_task(operator)
    assert manifest["path"] == str(destination)
    with gzip.open(destination, "rb") as lines:
        keys = sorted(json.loads(line)["key"] for line in lines)
    assert keys == sorted(f"k{index}" for index in range(10))
    # Beside the file, only the note that it is complete (test_download_skip.py): no temporary file.
    assert sorted(os.listdir(tmp_path / "out")) == [".taglines.jsonl.gz.complete.json", "taglines.jsonl.gz"]


@pytest.mark.parametrize("suffix", [".jsonl", ".JSONL"])
def test_a_destination_ending_in_jsonl_is_that_file_uncompressed(
    gemini_connection: EmulatorHandle, tmp_path: Path, suffix: str
) -> None:
    hook = GeminiBatchHook()
    name = _file_job(hook, tmp_path, count=3)
    destination = f"file://{tmp_path}/out/results{suffix}"
    operator = GeminiDownloadResultsOperator(task_id="d", batch_name=name, destination=destination)
    manifest, _ = run_task(operator)
    assert manifest["path"] == destination
    assert len((tmp_path / "out" / f"results{suffix}").read_bytes().splitlines()) == 3


def test_in_a_folder_the_file_is_named_after_the_display_name_without_the_key_and_the_job_id(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    hook = GeminiBatchHook()
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(_request("a", "hi")) + "\n")
    key = idempotency_key("nightly", "submit", "scheduled__2026-01-01T00:00:00+00:00")
    display_name = keyed_display_name("Nightly taglines", key, "nightly.submit")
    batch = hook.create_batch("gemini-2.5-flash", input_file=hook.upload_file(source).name, display_name=display_name)
    manifest, _ = _download(hook, batch.name, tmp_path / "out")
    assert os.path.basename(manifest["path"]) == f"Nightly_taglines-{batch.id}.jsonl"
    assert key not in manifest["path"]
    again, _ = _download(hook, batch.name, tmp_path / "out")
    assert again["path"] == manifest["path"], "the same job gets the same file: a rerun replaces it"
    file_name = os.path.basename(manifest["path"])
    assert sorted(os.listdir(tmp_path / "out")) == [f".{file_name}.complete.json", file_name]


def _embedding_request(key: str, text: str) -> dict[str, Any]:
    return {"key": key, "request": {"content": {"parts": [{"text": text}]}, "outputDimensionality": 8}}


@pytest.mark.parametrize("inline", [False, True], ids=["file", "inline"])
def test_embedding_results_carry_the_vector_and_the_token_count(
    gemini_connection: EmulatorHandle, tmp_path: Path, inline: bool
) -> None:
    hook = GeminiBatchHook()
    rows = [_embedding_request("a", "three words here"), _embedding_request("b", "two words")]
    if inline:
        batch = hook.create_embeddings_batch("gemini-embedding-001", requests=rows)
    else:
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps(row) + "\n" for row in rows))
        batch = hook.create_embeddings_batch("gemini-embedding-001", input_file=hook.upload_file(source).name)
    manifest, lines = _download(hook, batch.name, tmp_path / "out")
    by_key = {line["key"]: line for line in lines}
    for key, words in (("a", 3), ("b", 2)):
        line = by_key[key]
        assert line["embedding"] == line["response"]["embedding"]["values"]
        assert len(line["embedding"]) == 8
        assert line["usage"] == {"promptTokenCount": words, "totalTokenCount": words}
        assert "text" not in line, "an embedding has no text"
    assert manifest["usage"]["totalTokenCount"] == 5
    assert manifest["usage"]["promptTokenCount"] == 5
