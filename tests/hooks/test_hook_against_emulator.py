"""Every hook method against the emulator on loopback: a real HTTP server speaking the protocol."""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchAmbiguousCreateError,
    GeminiBatchError,
    GeminiBatchInvalidArgumentError,
    GeminiBatchNotFoundError,
    GeminiBatchPermissionError,
)
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import BatchState

GRANULARITY = 256 * 1024


def request_line(key: str, text: str) -> dict[str, object]:
    return {"key": key, "request": {"contents": [{"parts": [{"text": text}], "role": "user"}]}}


@pytest.fixture
def jsonl_file(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    with path.open("w") as out:
        for index in range(2000):  # About 200 KB: several chunks at the test granularity below.
            out.write(json.dumps(request_line(f"k{index}", f"Summarise ticket {index}: " + "words " * 10)) + "\n")
    return path


def wait_terminal(hook: GeminiBatchHook, name: str, timeout: float = 10.0) -> BatchState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = hook.get_batch(name).state
        if state.is_terminal:
            return state
        time.sleep(0.05)
    raise AssertionError(f"{name} did not finish within {timeout} s")


class TestFiles:
    def test_upload_get_list_download_delete(self, hook: GeminiBatchHook, jsonl_file: Path, tmp_path: Path) -> None:
        uploaded = hook.upload_file(jsonl_file, display_name="tickets")
        assert uploaded.name.startswith("files/")
        assert uploaded.size_bytes == jsonl_file.stat().st_size
        assert hook.get_file(uploaded.name).display_name == "tickets"
        assert uploaded.name in [f.name for f in hook.list_files(page_size=1)]
        copy = tmp_path / "copy.jsonl"
        assert hook.download_file(uploaded.name, copy) == jsonl_file.stat().st_size
        assert copy.read_bytes() == jsonl_file.read_bytes()
        hook.delete_file(uploaded.name)
        with pytest.raises(GeminiBatchPermissionError, match="403"):
            hook.get_file(uploaded.name)

    def test_upload_from_a_non_seekable_stream_and_a_file_uri(self, hook: GeminiBatchHook, jsonl_file: Path) -> None:
        class Pipe(io.RawIOBase):
            def __init__(self, data: bytes) -> None:
                self.inner = io.BytesIO(data)

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
                return self.inner.readinto(buffer)

        from_pipe = hook.upload_file(Pipe(jsonl_file.read_bytes()), display_name="piped")
        from_uri = hook.upload_file(f"file://{jsonl_file}")
        assert from_pipe.size_bytes == from_uri.size_bytes == jsonl_file.stat().st_size
        assert from_uri.display_name == "requests.jsonl"

    def test_chunks_respect_the_server_granularity(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle, jsonl_file: Path
    ) -> None:
        gemini_connection.control.configure(chunk_granularity=GRANULARITY)
        uploaded = hook.upload_file(jsonl_file, chunk_bytes=GRANULARITY + 1000)
        chunk_posts = [
            r for r in gemini_connection.control.requests() if "upload" in r["path"] and r["method"] == "POST"
        ]
        assert len(chunk_posts) == 1 + -(-jsonl_file.stat().st_size // GRANULARITY), "a start, then one chunk a granule"
        sha = hashlib.sha256(jsonl_file.read_bytes()).hexdigest()
        assert gemini_connection.control.file_sha256(uploaded.name) == sha

    def test_a_connection_dropped_mid_upload_resumes_and_the_file_is_exact(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle, jsonl_file: Path
    ) -> None:
        gemini_connection.control.configure(chunk_granularity=GRANULARITY)
        gemini_connection.control.inject_fault("drop_upload", after_bytes=GRANULARITY + 12345, count=1)
        uploaded = hook.upload_file(jsonl_file, chunk_bytes=4 * GRANULARITY)
        sha = hashlib.sha256(jsonl_file.read_bytes()).hexdigest()
        assert gemini_connection.control.file_sha256(uploaded.name) == sha
        assert uploaded.size_bytes == jsonl_file.stat().st_size

    def test_a_connection_dropped_mid_download_resumes(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle, jsonl_file: Path, tmp_path: Path
    ) -> None:
        uploaded = hook.upload_file(jsonl_file)
        gemini_connection.control.inject_fault("drop_download", after_bytes=54321, count=1)
        copy = tmp_path / "copy.jsonl"
        assert hook.download_file(uploaded.name, copy) == jsonl_file.stat().st_size
        assert copy.read_bytes() == jsonl_file.read_bytes()


class TestBatches:
    def test_inline_job_end_to_end(self, hook: GeminiBatchHook) -> None:
        requests = [request_line("a", "hello there"), request_line("b", "this one [[fail]]")]
        created = hook.create_batch("gemini-2.5-flash", requests=requests, display_name="inline")
        assert created.state is BatchState.PENDING
        assert wait_terminal(hook, created.name) is BatchState.SUCCEEDED
        batch = hook.get_batch(created.name)
        assert (batch.batch_stats.successful_request_count, batch.batch_stats.failed_request_count) == (1, 1)
        results = {r.key: r for r in hook.iter_results(batch)}
        assert results["a"].text
        assert "hello there" in results["a"].text
        assert results["b"].error is not None
        assert not results["b"].succeeded

    def test_file_job_results_stream_from_the_results_file(self, hook: GeminiBatchHook, jsonl_file: Path) -> None:
        uploaded = hook.upload_file(jsonl_file)
        created = hook.create_batch("models/gemini-2.5-flash", input_file=uploaded.name, display_name="file-job")
        assert wait_terminal(hook, created.name) is BatchState.SUCCEEDED
        batch = hook.get_batch(created.name)
        assert batch.responses_file == f"files/batch-{batch.id}"
        keys = [result.key for result in hook.iter_results(created.name)]
        assert sorted(keys) == sorted(f"k{i}" for i in range(2000))

    def test_embeddings_job(self, hook: GeminiBatchHook) -> None:
        requests = [{"key": "e1", "request": {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8}}]
        created = hook.create_embeddings_batch("gemini-embedding-001", requests=requests)
        assert wait_terminal(hook, created.name) is BatchState.SUCCEEDED
        (result,) = hook.iter_results(created.name)
        assert result.key == "e1"
        assert result.embedding is not None
        assert len(result.embedding) == 8

    def test_list_cancel_delete(self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle) -> None:
        gemini_connection.control.configure(running_seconds=30)
        names = [hook.create_batch("gemini-2.5-flash", requests=[request_line("k", "x")]).name for _ in range(3)]
        assert set(names) <= {b.name for b in hook.list_batches(page_size=2)}
        hook.cancel_batch(names[0])
        assert wait_terminal(hook, names[0]) is BatchState.CANCELLED
        hook.delete_batch(names[1])
        with pytest.raises(GeminiBatchNotFoundError):
            hook.get_batch(names[1])

    async def test_async_twins(self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle) -> None:
        gemini_connection.control.configure(running_seconds=30)
        name = hook.create_batch("gemini-2.5-flash", requests=[request_line("k", "x")]).name
        assert (await hook.aget_batch(name)).name == name
        assert name in [b.name async for b in hook.alist_batches()]
        await hook.acancel_batch(name)
        assert (await hook.aget_batch(name)).state is BatchState.CANCELLED
        await hook.adelete_batch(name)
        await hook.aclose()


class TestFaults:
    def test_two_429s_with_retry_info_then_success_waits_at_least_a_second(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle
    ) -> None:
        name = hook.create_batch("gemini-2.5-flash", requests=[request_line("k", "x")]).name
        gemini_connection.control.inject_fault("status", status=429, count=2, retry_delay="1s", method="GET")
        started = time.monotonic()
        assert hook.get_batch(name).name == name
        assert time.monotonic() - started >= 1.0

    def test_429s_with_retry_after_are_survived(self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle) -> None:
        gemini_connection.control.inject_fault("status", status=429, count=2, retry_after="0.2")
        started = time.monotonic()
        assert list(hook.list_batches()) == []
        assert time.monotonic() - started >= 0.4

    def test_bursts_of_5xx_are_survived(self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle) -> None:
        gemini_connection.control.inject_fault("status", status=500, count=2)
        gemini_connection.control.inject_fault("status", status=503, count=2, retry_after="0")
        assert list(hook.list_batches()) == []

    def test_a_reply_lost_after_create_raises_ambiguous_and_one_job_exists(
        self, hook: GeminiBatchHook, gemini_connection: EmulatorHandle
    ) -> None:
        gemini_connection.control.inject_fault("drop_after_create", count=1)
        with pytest.raises(GeminiBatchAmbiguousCreateError, match="NOT resent"):
            hook.create_batch("gemini-2.5-flash", requests=[request_line("k", "x")], display_name="nightly")
        assert gemini_connection.control.created_count() == 1

    def test_a_wrong_key_is_rejected_and_never_echoed(
        self, gemini_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        wrong = "wrong-key-0123456789abcdef"
        conn = {"conn_type": "gemini", "host": gemini_emulator.base_url, "password": wrong}
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))
        with pytest.raises(GeminiBatchInvalidArgumentError) as raised:
            GeminiBatchHook().get_batch("batches/x")
        assert raised.value.reason == "API_KEY_INVALID"
        assert wrong not in str(raised.value)
        ok, message = GeminiBatchHook().test_connection()
        assert not ok
        assert wrong not in message

    def test_test_connection_succeeds_with_the_right_key(self, hook: GeminiBatchHook) -> None:
        ok, message = hook.test_connection()
        assert ok, message


class _EndsEarly(io.BytesIO):
    """A seekable stream whose reads stop at byte 10 while its size says 1,000: a file truncated mid-upload."""

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= 10:
            return b""
        return super().read(min(10 - self.tell(), size if size is not None and size >= 0 else 10))


def test_a_source_that_ends_before_its_size_fails_with_the_byte(hook: GeminiBatchHook) -> None:
    with pytest.raises(GeminiBatchError, match=r"ended at byte 10 but was announced as 1000 bytes"):
        hook.upload_file(_EndsEarly(b"x" * 1000))
