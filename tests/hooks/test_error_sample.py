"""``GeminiBatchHook.sample_errors``: the first failed requests of a job, from a bounded look at its results.

The results file is served through ``httpx.MockTransport`` as a stream whose lines are counted as
they are pulled, so each test sees how far the hook read, not only what it returned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx
import pytest

from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import Batch

from .conftest import Handler, error_reply, operation

MakeHook = Callable[[Handler], GeminiBatchHook]
RESULTS = "files/batch-results"


def file_job(**stats: int) -> Batch:
    data: dict[str, Any] = operation(state="BATCH_STATE_SUCCEEDED")
    data["metadata"]["output"] = {"responsesFile": RESULTS}
    data["metadata"]["batchStats"] = {name: str(value) for name, value in stats.items()}
    data["done"] = True
    return Batch.model_validate(data)


def ok_line(number: int) -> bytes:
    response = {"candidates": [{"content": {"parts": [{"text": f'answer {number} mentions an "error"'}]}}]}
    return json.dumps({"key": f"k{number}", "response": response}).encode() + b"\n"


def error_line(number: int, message: str = "contents must not be empty") -> bytes:
    error = {"code": 3, "message": f"{message} ({number})", "status": "INVALID_ARGUMENT"}
    return json.dumps({"key": f"k{number}", "error": error}).encode() + b"\n"


class CountingFile:
    """A results file served line by line (several lines per chunk), counting the lines pulled."""

    def __init__(self, lines: Iterator[bytes], lines_per_chunk: int = 10) -> None:
        self.lines = lines
        self.lines_per_chunk = lines_per_chunk
        self.pulled = 0
        self.downloads = 0

    def chunks(self) -> Iterator[bytes]:
        chunk: list[bytes] = []
        for line in self.lines:
            self.pulled += 1
            chunk.append(line)
            if len(chunk) == self.lines_per_chunk:
                yield b"".join(chunk)
                chunk = []
        if chunk:
            yield b"".join(chunk)

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/download/v1beta/{RESULTS}:download", request.url
        self.downloads += 1
        return httpx.Response(200, content=self.chunks())


def many(make_line: Callable[[int], bytes], count: int = 50_000) -> Iterator[bytes]:
    """Far more lines than any bound: a look that ignored its bounds would read them all, and fail the test."""
    return (make_line(number) for number in range(count))


class TestResultsFile:
    def test_stops_at_the_limit_of_errors(self, make_hook: MakeHook) -> None:
        served = CountingFile(many(lambda n: error_line(n) if n % 2 else ok_line(n)))
        sample = make_hook(served.handler).sample_errors(file_job(requestCount=10**6), limit=3)
        assert [(result.key, result.error.message if result.error else None) for result in sample] == [
            ("k1", "contents must not be empty (1)"),
            ("k3", "contents must not be empty (3)"),
            ("k5", "contents must not be empty (5)"),
        ]
        assert served.pulled <= 10, "reading stopped with the chunk holding the third error"

    def test_stops_after_max_lines_when_the_errors_are_far_in(self, make_hook: MakeHook) -> None:
        served = CountingFile(many(ok_line))
        assert make_hook(served.handler).sample_errors(file_job(), max_lines=100) == []
        assert served.pulled <= 110

    def test_stops_after_max_bytes_even_inside_one_long_line(self, make_hook: MakeHook) -> None:
        def huge_lines() -> Iterator[bytes]:
            for _ in range(100):
                yield b'{"key": "img", "response": {"data": "' + b"A" * 100_000

        served = CountingFile(huge_lines(), lines_per_chunk=1)
        assert make_hook(served.handler).sample_errors(file_job(), max_bytes=1_000_000) == []
        assert served.pulled <= 11

    def test_keeps_only_key_and_error(self, make_hook: MakeHook) -> None:
        line = json.dumps({"key": "k1", "error": {"code": 3, "message": "m"}, "request": {"contents": "long"}})
        served = CountingFile(iter([line.encode() + b"\n"]))
        (result,) = make_hook(served.handler).sample_errors(file_job())
        assert (result.key, result.extra, result.raw, result.response) == ("k1", {}, None, None)

    def test_a_line_that_is_not_a_result_is_passed_over(self, make_hook: MakeHook) -> None:
        served = CountingFile(iter([b"not json\n", b'{"key": "k", "error": "text"}\n', error_line(7)]))
        sample = make_hook(served.handler).sample_errors(file_job())
        assert [result.key for result in sample] == ["k7"]

    def test_a_failed_download_returns_what_was_read_and_does_not_raise(
        self, make_hook: MakeHook, capsys: pytest.CaptureFixture[str]
    ) -> None:
        hook = make_hook(lambda request: error_reply(403, "PERMISSION_DENIED", "You do not have permission"))
        assert hook.sample_errors(file_job()) == []
        assert "Could not read the first failed requests of batches/b1" in capsys.readouterr().out

    def test_an_unavailable_service_is_not_waited_out_for_a_sample(self, make_hook: MakeHook) -> None:
        """The task is failing already: one attempt, not the connection's retries with their server delays."""
        downloads: list[str] = []

        def unavailable(request: httpx.Request) -> httpx.Response:
            downloads.append(request.url.path)
            return error_reply(
                503, "UNAVAILABLE", "The service is currently unavailable.", headers={"retry-after": "2"}
            )

        assert make_hook(unavailable).sample_errors(file_job()) == []
        assert len(downloads) == 1


class TestInlineResults:
    ITEMS: ClassVar[list[dict[str, Any]]] = [
        {"response": {"candidates": []}, "metadata": {"key": "a"}},
        {"error": {"code": 3, "message": "no contents"}, "metadata": {"key": "b"}},
        {"error": {"code": 13, "message": "internal"}},
    ]

    def test_read_from_the_job_without_any_request(self, make_hook: MakeHook) -> None:
        data = operation(state="BATCH_STATE_SUCCEEDED")
        data["response"] = {"inlinedResponses": {"inlinedResponses": self.ITEMS}}
        batch = Batch.model_validate(data)
        assert batch.inlined_responses is not None

        def no_calls(request: httpx.Request) -> httpx.Response:
            raise AssertionError(f"unexpected request {request.url}")

        sample = make_hook(no_calls).sample_errors(batch)
        assert [(result.key, result.error.message if result.error else None) for result in sample] == [
            ("b", "no contents"),
            (None, "internal"),
        ]

    def test_a_job_from_a_trigger_event_is_fetched_once_for_its_inline_results(self, make_hook: MakeHook) -> None:
        calls: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            calls.append(request.url.path)
            data = operation(state="BATCH_STATE_SUCCEEDED")
            data["response"] = {"inlinedResponses": {"inlinedResponses": self.ITEMS}}
            return httpx.Response(200, json=data)

        event_batch = Batch.model_validate(operation(state="BATCH_STATE_SUCCEEDED"))  # No inline results.
        sample = make_hook(handler).sample_errors(event_batch, limit=1)
        assert [result.key for result in sample] == ["b"]
        assert calls == ["/v1beta/batches/b1"]
