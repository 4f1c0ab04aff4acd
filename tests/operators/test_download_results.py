"""GeminiDownloadResultsOperator's output: one JSON object per request, the service's line kept intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchConnectionError, GeminiBatchIncompleteResults
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import BatchResult, Status
from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator
from airflow_provider_gemini_batch.operators.files import normalized_line
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


@pytest.mark.parametrize(
    "line",
    [
        b'{"key": "a", "response": {"candidates": []}, "text": "mine"}',  # its own "text": rebuilt, not doubled
        b'{"key": "a", "response": {}, "usage": 1}',
        b'{"key": "a", "response": {"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}}  \r',
        b'{"key":null,"error":{"code":3,"message":"bad"}}',
        b'{"response": {}, "ticket": "T-9", "text": "own"}',  # no key, echoed fields, its own text
    ],
)
def test_every_written_line_is_one_json_object_with_the_documented_fields(line: bytes) -> None:
    result = BatchResult.from_json(line)
    written = normalized_line(result)
    assert written.endswith(b"\n")
    assert written.count(b"\n") == 1
    parsed = json.loads(written)
    assert parsed["key"] == result.key
    assert parsed["text"] == result.text
    assert parsed["usage"] == result.usage
    assert ("error" in parsed) == (result.error is not None)
    assert {name: parsed[name] for name in result.extra if name not in ("text", "usage")} == {
        name: value for name, value in result.extra.items() if name not in ("text", "usage")
    }, "the line's other fields are kept"


def test_result_lines_with_the_wrong_shape_are_refused() -> None:
    assert BatchResult.from_json(b'{"key": "k", "error": {"code": 3}}').error == Status(code=3)
    for bad in (b"[1]", b'{"key": 5, "response": {}}', b'{"key": "k", "response": [1]}', b'{"error": "no"}'):
        with pytest.raises(ValueError, match=r"must be|JSON|object|validation error"):
            BatchResult.from_json(bad)
