"""``GeminiBatchHook.write_results`` line by line, on ``httpx.MockTransport``: every shape a results line can take.

The fast path splices the service's line; anything it does not expect goes the long way. Either way a
written line is one JSON object with the fields the download operator documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_gemini_batch.exceptions import GeminiBatchError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import BatchResult, Status
from tests.hooks.conftest import Handler, operation

MakeHook = Callable[[Handler], GeminiBatchHook]
GENERATE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
EMBED = "type.googleapis.com/google.ai.generativelanguage.v1main.EmbedContentBatch"


def serve(body: bytes, request_count: int, kind: str = GENERATE) -> Handler:
    """A SUCCEEDED job ``batches/b1`` of ``request_count`` requests, and its results file ``body``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(":download"):
            return httpx.Response(200, content=iter([body[:7], body[7:]]))  # a line cut across chunks
        finished = operation(
            state="BATCH_STATE_SUCCEEDED",
            output={"responsesFile": "files/batch-b1"},
            batchStats={"requestCount": str(request_count)},
        )
        finished["metadata"]["@type"] = kind  # type: ignore[index]
        return httpx.Response(200, json={**finished, "done": True})

    return handle


def written(make_hook: MakeHook, tmp_path: Path, *lines: bytes, kind: str = GENERATE) -> list[dict[str, Any]]:
    body = b"".join(line + b"\n" for line in lines)
    count = sum(1 for line in lines if line.strip())
    summary = make_hook(serve(body, count, kind)).write_results("batches/b1", tmp_path / "out.jsonl")
    data = (tmp_path / "out.jsonl").read_bytes()
    assert data.endswith(b"\n")
    assert summary.result_count == count == data.count(b"\n"), "one line per result"
    return [json.loads(line) for line in data.splitlines()]


ANSWER = {"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}}]}


@pytest.mark.parametrize(
    "line",
    [
        b'{"key": "a", "response": {"candidates": []}, "text": "mine"}',  # its own "text": ours wins, once
        b'{"key": "a", "response": {}, "usage": 1}',
        b'{"key": "a", "response": {"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}}  \r',
        b'{"key":null,"error":{"code":3,"message":"bad"}}',
        b'{"response": {}, "ticket": "T-9", "text": "own"}',  # no key, echoed fields, its own text
        b'{"key": "a", "response": {"candidates": ["not an object"]}}',
        b'{"key": "a", "response": {"candidates": [{"content": {"parts": [{"text": 5}, {"text": "x"}]}}]}}',
        b'{"key": "a", "response": {"usageMetadata": {"promptTokenCount": "7", "promptTokensDetails": [{}]}}}',
        b'{"key": "a", "error": {"code": 13, "message": "internal"}, "ticket": 4}',
        b'{"key": "a"}',
    ],
)
def test_every_written_line_is_one_json_object_with_the_documented_fields(
    make_hook: MakeHook, tmp_path: Path, line: bytes
) -> None:
    expected = BatchResult.from_json(line)
    (parsed,) = written(make_hook, tmp_path, line)
    assert parsed["key"] == expected.key
    assert parsed["text"] == expected.text
    assert parsed["usage"] == expected.usage
    assert ("error" in parsed) == (expected.error is not None)
    assert parsed.get("response") == expected.response, "the response is passed through untouched"
    assert {name: parsed[name] for name in expected.extra if name not in ("text", "usage")} == {
        name: value for name, value in expected.extra.items() if name not in ("text", "usage")
    }, "the line's other fields are kept"


def test_text_joins_the_first_candidates_parts_without_thoughts_and_usage_keeps_the_counters(
    make_hook: MakeHook, tmp_path: Path
) -> None:
    response = {
        "candidates": [{"content": {"parts": [{"text": "thinking", "thought": True}, {"text": "a"}, {"text": "b"}]}}],
        "usageMetadata": {"promptTokenCount": 8, "thoughtsTokenCount": 5, "totalTokenCount": 16, "extra": [1]},
    }
    (parsed,) = written(make_hook, tmp_path, json.dumps({"key": "k", "response": response}).encode())
    assert parsed["text"] == "ab"
    assert parsed["usage"] == {"promptTokenCount": 8, "thoughtsTokenCount": 5, "totalTokenCount": 16}
    assert parsed["response"] == response


def test_the_summary_counts_outcomes_and_sums_the_token_counters(make_hook: MakeHook, tmp_path: Path) -> None:
    good = {"key": "a", "response": {**ANSWER, "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 5}}}
    other = {"key": "b", "response": {**ANSWER, "usageMetadata": {"promptTokenCount": "4", "totalTokenCount": 9}}}
    bad = {"key": "c", "error": {"code": 3, "message": "no"}}
    body = b"".join(json.dumps(line).encode() + b"\n" for line in (good, other, bad))
    summary = make_hook(serve(body, 3)).write_results("batches/b1", tmp_path / "out.jsonl")
    assert (summary.result_count, summary.succeeded_count, summary.failed_count) == (3, 2, 1)
    assert (summary.expected_count, summary.batch_name, summary.path) == (3, "batches/b1", str(tmp_path / "out.jsonl"))
    assert summary.usage["promptTokenCount"] == 7
    assert summary.usage["totalTokenCount"] == 14
    assert summary.usage["candidatesTokenCount"] == 0


def test_blank_lines_are_skipped_and_a_bad_line_is_named_by_number(make_hook: MakeHook, tmp_path: Path) -> None:
    lines = [b'{"key": "a", "response": {}}', b"", b"  ", b'{"key": "b", "response": {}}']
    assert [line["key"] for line in written(make_hook, tmp_path, *lines)] == ["a", "b"]
    for bad in (b"[1]", b'{"key": 5, "response": {}}', b'{"key": "k", "response": [1]}', b'{"error": "no"}', b"{"):
        body = b'{"key": "a", "response": {}}\n\n' + bad + b'\n{"key": "b", "response": {}}\n'
        with pytest.raises(GeminiBatchError, match=r"Line 3 of results file files/batch-b1 is not a valid result"):
            make_hook(serve(body, 3)).write_results("batches/b1", tmp_path / "bad.jsonl")
        assert not (tmp_path / "bad.jsonl").exists()


def test_embedding_lines_carry_the_values_and_the_token_count(make_hook: MakeHook, tmp_path: Path) -> None:
    lines = [
        b'{"key": "a", "response": {"tokenCount": "3", "embedding": {"values": [0.5, -1, 2e-3]}}}',
        b'{"key": "b", "response": {"embedding": {"values": []}}}',  # a token count is not always sent
        b'{"key": "c", "error": {"code": 3, "message": "no content"}}',
    ]
    a, b, c = written(make_hook, tmp_path, *lines, kind=EMBED)
    assert (a["embedding"], a["usage"]) == ([0.5, -1, 0.002], {"promptTokenCount": 3, "totalTokenCount": 3})
    assert (b["embedding"], b["usage"]) == ([], {})
    assert (c["embedding"], c["usage"], c["error"]["code"]) == (None, {}, 3)
    assert all("text" not in line for line in (a, b, c))


@pytest.mark.parametrize(
    "bad", [b"[1]", b'{"key": 5, "response": {}}', b'{"key": "k", "response": [1]}', b'{"error": "no"}']
)
def test_iter_results_refuses_the_lines_write_results_refuses(make_hook: MakeHook, tmp_path: Path, bad: bytes) -> None:
    body = b'{"key": "a", "response": {}}\n' + bad + b"\n"
    with pytest.raises(GeminiBatchError, match=r"Line 2 of results file files/batch-b1 is not a valid result"):
        list(make_hook(serve(body, 2)).iter_results("batches/b1"))
    with pytest.raises(GeminiBatchError, match=r"Line 2 of results file files/batch-b1 is not a valid result"):
        make_hook(serve(body, 2)).write_results("batches/b1", tmp_path / "out.jsonl")
    assert BatchResult.from_json(b'{"key": "k", "error": {"code": 3}}').error == Status(code=3)


def test_tokens_of_lines_that_go_the_long_way_are_summed_too(make_hook: MakeHook, tmp_path: Path) -> None:
    """A line echoing its own ``text`` is rebuilt, not spliced; its tokens must still reach the summary."""
    spliced = {"key": "a", "response": {**ANSWER, "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 7}}}
    rebuilt = {
        "key": "b",
        "text": "echoed from the input line",
        "response": {**ANSWER, "usageMetadata": {"promptTokenCount": 100, "totalTokenCount": 100}},
    }
    body = b"".join(json.dumps(line).encode() + b"\n" for line in (spliced, rebuilt))
    summary = make_hook(serve(body, 2)).write_results("batches/b1", tmp_path / "out.jsonl")
    assert summary.usage["promptTokenCount"] == 105
    assert summary.usage["totalTokenCount"] == 107
