"""What ``iter_results`` and ``download_file`` promise about completeness, on ``httpx.MockTransport``.

A results body sent without a length can end early at a line boundary and look whole; every read is
compared with the job's ``batchStats.requestCount`` (``docs/protocol.md``, "Results files and counts
can disagree"). A file download that fails leaves nothing at its destination.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_gemini_batch.exceptions import GeminiBatchConnectionError, GeminiBatchIncompleteResults
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import Batch, BatchStats
from tests.hooks.conftest import Handler, operation

MakeHook = Callable[[Handler], GeminiBatchHook]
MAX_RETRIES = 3  # tests/hooks/conftest.py's connection


def lines(keys: list[str]) -> list[bytes]:
    return [b'{"key": "%s", "response": {}}\n' % key.encode() for key in keys]


KEYS = [f"k{index}" for index in range(10)]
BODY = b"".join(lines(KEYS))


class ResultsServer:
    """Serve ``batches/b1`` (SUCCEEDED, ``request_count`` requests) and its results file.

    The first ``short_replies`` downloads end cleanly after ``short_bytes`` bytes, with no
    Content-Length: httpx cannot tell them from a whole body. Ranges are honoured when asked for.
    """

    def __init__(self, body: bytes, request_count: int, short_replies: int = 0, short_bytes: int = 0) -> None:
        self.body, self.request_count = body, request_count
        self.short_replies, self.short_bytes = short_replies, short_bytes
        self.downloads: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith(":download"):
            finished = operation(
                state="BATCH_STATE_SUCCEEDED",
                output={"responsesFile": "files/batch-b1"},
                batchStats={"requestCount": str(self.request_count)},
            )
            return httpx.Response(200, json={**finished, "done": True})
        self.downloads.append(request)
        start = int(request.headers["range"][6:-1]) if "range" in request.headers else 0
        data = self.body[start:]
        if len(self.downloads) <= self.short_replies:
            data = data[: self.short_bytes]
        # An iterator body goes out without a Content-Length, as a chunked or connection-close reply does.
        return httpx.Response(206 if start else 200, content=iter([data[:100], data[100:]]))


def test_a_results_body_that_ends_early_is_read_on_and_no_line_comes_twice(make_hook: MakeHook) -> None:
    server = ResultsServer(BODY, request_count=10, short_replies=1, short_bytes=len(b"".join(lines(KEYS[:6]))))
    keys = [result.key for result in make_hook(server).iter_results("batches/b1")]
    assert keys == KEYS
    assert len(server.downloads) == 2


def test_a_body_cut_in_the_middle_of_a_line_is_read_on(make_hook: MakeHook) -> None:
    server = ResultsServer(BODY, request_count=10, short_replies=2, short_bytes=len(BODY) // 2 + 7)
    keys = [result.key for result in make_hook(server).iter_results("batches/b1")]
    assert keys == KEYS
    assert len(server.downloads) == 3


def test_results_still_missing_after_every_retry_raise_incomplete(make_hook: MakeHook) -> None:
    server = ResultsServer(BODY, request_count=10, short_replies=99, short_bytes=len(b"".join(lines(KEYS[:6]))))
    read: list[str | None] = []
    with pytest.raises(GeminiBatchIncompleteResults, match=r"read 6 of 10 results; 4 missing") as raised:
        read.extend(result.key for result in make_hook(server).iter_results("batches/b1"))
    assert read == KEYS[:6], "what was read is still yielded, once"
    assert (raised.value.expected_count, raised.value.read_count, raised.value.missing_count) == (10, 6, 4)
    assert len(server.downloads) == MAX_RETRIES + 1


def test_expected_keys_name_the_missing_ones_and_a_repeated_key_counts_once(make_hook: MakeHook) -> None:
    body = b"".join(lines([*KEYS[:8], "k0", "k1"]))  # ten lines, as many as requests, but two keys twice
    server = ResultsServer(body, request_count=10)
    with pytest.raises(GeminiBatchIncompleteResults, match=r"read 8 of 10 results; 2 missing \(keys 'k8', 'k9'\)"):
        list(make_hook(server).iter_results("batches/b1", expected_keys=KEYS))
    assert len(server.downloads) == 1, "a body with as many lines as requests is not read again"


def test_a_complete_body_is_read_once_and_expected_keys_pass(make_hook: MakeHook) -> None:
    server = ResultsServer(BODY, request_count=10)
    assert len(list(make_hook(server).iter_results("batches/b1", expected_keys=reversed(KEYS)))) == 10
    assert len(server.downloads) == 1


def test_inline_results_fewer_than_the_request_count_raise(make_hook: MakeHook) -> None:
    items = [{"response": {}, "metadata": {"key": key}} for key in ("a", "b")]
    batch = Batch(name="batches/b1", inlined_responses=items, batch_stats=BatchStats(request_count=3))
    read: list[str | None] = []
    with pytest.raises(GeminiBatchIncompleteResults, match=r"read 2 of 3 results; 1 missing"):
        read.extend(result.key for result in make_hook(ResultsServer(b"", 0)).iter_results(batch))
    assert read == ["a", "b"]
    with pytest.raises(GeminiBatchIncompleteResults, match=r"1 missing \(keys 'c'\)"):
        list(make_hook(ResultsServer(b"", 0)).iter_results(batch, expected_keys=["a", "b", "c"]))


class _Breaking(httpx.SyncByteStream):
    """A download that sends some bytes and loses the connection, every time."""

    def __init__(self, destination: Path) -> None:
        self.destination = destination

    def __iter__(self) -> Iterator[bytes]:
        yield BODY[:100]
        assert not self.destination.exists(), "the destination appears only when complete"
        raise httpx.ReadError("connection reset")


def _failing_download(destination: Path) -> Handler:
    return lambda request: httpx.Response(200, stream=_Breaking(destination))


def test_a_failed_download_leaves_nothing_in_the_folder(make_hook: MakeHook, tmp_path: Path) -> None:
    destination = tmp_path / "out" / "results.jsonl"
    with pytest.raises(GeminiBatchConnectionError):
        make_hook(_failing_download(destination)).download_file("files/batch-1", destination)
    assert os.listdir(tmp_path / "out") == []


def test_a_failed_download_to_object_storage_leaves_nothing(make_hook: MakeHook, tmp_path: Path) -> None:
    destination = tmp_path / "out" / "results.jsonl"
    with pytest.raises(GeminiBatchConnectionError):
        make_hook(_failing_download(destination)).download_file(
            "files/batch-1", ObjectStoragePath(f"file://{destination}")
        )
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("as_uri", [False, True])
def test_a_download_appears_whole_under_its_name_and_replaces_an_older_file(
    make_hook: MakeHook, tmp_path: Path, as_uri: bool
) -> None:
    destination = tmp_path / "results.jsonl"
    destination.write_bytes(b"an older download\n")
    seen: list[Any] = []

    def serve(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            yield BODY[:50]
            seen.append(destination.read_bytes())  # mid-download: the older file is still whole
            yield BODY[50:]

        return httpx.Response(200, content=body())

    target: Any = f"file://{destination}" if as_uri else str(destination)
    assert make_hook(serve).download_file("files/batch-1", target) == len(BODY)
    assert seen == [b"an older download\n"]
    assert destination.read_bytes() == BODY
    assert os.listdir(tmp_path) == ["results.jsonl"]
    assert [json.loads(line)["key"] for line in destination.read_bytes().splitlines()] == KEYS
