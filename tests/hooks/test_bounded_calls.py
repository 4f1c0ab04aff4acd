"""The connection's ``timeout`` bounds a whole call attempt, however slowly the reply trickles.

Trickled replies come from the emulator's ``trickle`` fault; downloads that stall mid-body (no byte
moves, the connection stays open) and then answer the resuming ``Range`` request come from a
loopback server that scripts each reply byte by byte.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.emulator.pytest_plugin import EMULATOR_API_KEY
from airflow_provider_gemini_batch.exceptions import GeminiBatchConnectionError, GeminiBatchError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from tests.hooks.conftest import FAKE_KEY

Reply = Callable[[BaseHTTPRequestHandler], None]


class ScriptedServer:
    """An HTTP server on 127.0.0.1 that records every request and answers as ``reply`` scripts it."""

    def __init__(self, reply: Reply) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    reply(self)
                except OSError:  # The client gave up on this reply: that is what the tests provoke.
                    self.close_connection = True

            do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.stopping.set()  # Wakes every reply that stalls or trickles.
        self.httpd.shutdown()
        self.httpd.server_close()

    def send_head(self, handler: BaseHTTPRequestHandler, status: int, length: int, **headers: str) -> None:
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(length))
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()

    def trickle(self, handler: BaseHTTPRequestHandler, data: bytes, interval: float) -> None:
        """Send ``data`` one byte every ``interval`` seconds."""
        for index in range(len(data)):
            if self.stopping.wait(interval):
                return
            handler.wfile.write(data[index : index + 1])


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ScriptedServer]]:
    """Start a scripted server and point the ``gemini_default`` connection at it."""
    servers: list[ScriptedServer] = []

    def start(reply: Reply, *, timeout: float = 3, max_retries: int = 1) -> ScriptedServer:
        server = ScriptedServer(reply)
        servers.append(server)
        extra = {"timeout": timeout, "max_retries": max_retries}
        conn = {"conn_type": "gemini", "host": server.url, "password": FAKE_KEY, "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def impatient_connection(gemini_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """The emulator, through a connection that allows 3 s per attempt and one retry."""
    extra = {"timeout": 3, "max_retries": 1}
    conn = {
        "conn_type": "gemini",
        "host": gemini_emulator.base_url,
        "password": gemini_emulator.api_key,
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))
    gemini_emulator.control.configure(pending_seconds=60)
    return gemini_emulator


def new_batch(hook: GeminiBatchHook) -> str:
    request = {"key": "k1", "request": {"contents": [{"parts": [{"text": "hi"}], "role": "user"}]}}
    return hook.create_batch("gemini-2.5-flash", requests=[request]).name


class TestTricklingReply:
    """Replies trickle one byte a second: without an attempt deadline each poll would take minutes."""

    def test_get_batch_fails_after_about_timeout_per_attempt_and_is_retried(
        self, impatient_connection: EmulatorHandle
    ) -> None:
        hook = GeminiBatchHook(retry_base_delay=0.01)
        name = new_batch(hook)
        impatient_connection.control.inject_fault("trickle", seconds=1, count=2, method="GET", path_contains=name)
        started = time.monotonic()
        with pytest.raises(GeminiBatchConnectionError, match="after 2 attempts") as raised:
            hook.get_batch(name)
        elapsed = time.monotonic() - started
        hook.close()
        assert 6 <= elapsed < 20  # Two attempts of about 3 s each: the timeout is not cut short either.
        assert f"{impatient_connection.base_url}/v1beta/{name}" in str(raised.value)
        assert EMULATOR_API_KEY not in str(raised.value)

    async def test_aget_batch_fails_after_about_timeout_per_attempt_and_is_retried(
        self, impatient_connection: EmulatorHandle
    ) -> None:
        hook = GeminiBatchHook(retry_base_delay=0.01)
        name = await asyncio.to_thread(new_batch, hook)
        impatient_connection.control.inject_fault("trickle", seconds=1, count=2, method="GET", path_contains=name)
        started = time.monotonic()
        with pytest.raises(GeminiBatchError, match="after 2 attempts"):
            await hook.aget_batch(name)
        elapsed = time.monotonic() - started
        hook.close()
        await hook.aclose()
        assert 6 <= elapsed < 20

    async def test_a_slow_attempt_gives_its_gate_slot_back_at_the_timeout(
        self, impatient_connection: EmulatorHandle
    ) -> None:
        hook = GeminiBatchHook(async_gate=asyncio.Semaphore(1), retry_base_delay=0.01)
        slow_name, fast_name = await asyncio.to_thread(lambda: (new_batch(hook), new_batch(hook)))
        impatient_connection.control.inject_fault("trickle", seconds=1, method="GET", path_contains=slow_name)
        started = time.monotonic()
        slow = asyncio.create_task(hook.aget_batch(slow_name))
        await asyncio.sleep(0.3)  # The slow poll holds the only slot now.
        fast = await asyncio.wait_for(hook.aget_batch(fast_name), timeout=15)
        waited = time.monotonic() - started
        # Its first attempt timed out; the retry (no longer trickled) gets the batch.
        assert (await slow).name == slow_name
        hook.close()
        await hook.aclose()
        assert fast.name == fast_name
        assert 2.5 < waited < 6


class TestStalledDownload:
    def test_download_that_stalls_mid_body_resumes_with_range(
        self, serve: Callable[..., ScriptedServer], tmp_path: Path
    ) -> None:
        data = bytes(range(256)) * 4096  # 1 MiB, every offset distinguishable.
        half = len(data) // 2
        holder: list[ScriptedServer] = []

        def reply(handler: BaseHTTPRequestHandler) -> None:
            server = holder[0]
            ranged = handler.headers.get("range")
            if ranged is None:
                server.send_head(handler, 200, len(data))
                handler.wfile.write(data[:half])
                server.stopping.wait(30)  # No byte moves: the client must give up and resume.
                return
            start = int(ranged.removeprefix("bytes=").rstrip("-"))
            server.send_head(
                handler, 206, len(data) - start, content_range=f"bytes {start}-{len(data) - 1}/{len(data)}"
            )
            handler.wfile.write(data[start:])

        holder.append(serve(reply, timeout=1, max_retries=2))
        hook = GeminiBatchHook(retry_base_delay=0.01)
        started = time.monotonic()
        assert hook.download_file("files/f1", tmp_path / "out.bin") == len(data)
        hook.close()
        assert (tmp_path / "out.bin").read_bytes() == data
        assert time.monotonic() - started < 10
        ranges = [headers.get("range") for _, _, headers in holder[0].requests]
        assert ranges[0] is None
        assert len(ranges) == 2
        assert ranges[1] is not None
        resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
        assert 0 < resumed_at <= half

    def test_a_download_that_never_resumes_names_the_url_without_its_query(
        self, serve: Callable[..., ScriptedServer], tmp_path: Path
    ) -> None:
        holder: list[ScriptedServer] = []

        def reply(handler: BaseHTTPRequestHandler) -> None:
            holder[0].send_head(handler, 200, 100)
            holder[0].stopping.wait(30)

        holder.append(serve(reply, timeout=1, max_retries=0))
        hook = GeminiBatchHook(retry_base_delay=0.01)
        with pytest.raises(GeminiBatchConnectionError) as raised:
            hook.download_file("files/f1", tmp_path / "out.bin")
        hook.close()
        message = str(raised.value)
        assert f"{holder[0].url}/download/v1beta/files/f1:download" in message
        assert "alt=media" not in message
        assert ".." not in message


class TestStalledUploadChunk:
    def test_a_chunk_whose_reply_never_comes_is_given_up_and_resumed_by_query(
        self, serve: Callable[..., ScriptedServer]
    ) -> None:
        data = b'{"key": "k1"}\n' * 1000
        holder: list[ScriptedServer] = []

        def reply(handler: BaseHTTPRequestHandler) -> None:
            server = holder[0]
            command = handler.headers.get("x-goog-upload-command")
            if command == "start":
                upload_url = f"{server.url}/upload/v1beta/files?upload_id=u1"
                server.send_head(handler, 200, 0, x_goog_upload_status="active", x_goog_upload_url=upload_url)
            elif command == "query":
                body = json.dumps({"file": {"name": "files/f1", "sizeBytes": str(len(data))}}).encode()
                server.send_head(handler, 200, len(body), x_goog_upload_status="final")
                handler.wfile.write(body)
            else:  # The whole chunk arrived and is stored, but its reply is lost in a stall.
                server.stopping.wait(30)

        holder.append(serve(reply, timeout=1, max_retries=2))
        hook = GeminiBatchHook(retry_base_delay=0.01)
        started = time.monotonic()
        uploaded = hook.upload_file(io.BytesIO(data), display_name="tickets")
        hook.close()
        assert uploaded.name == "files/f1"
        assert time.monotonic() - started < 10
        commands = [headers.get("x-goog-upload-command") for _, _, headers in holder[0].requests]
        assert commands == ["start", "upload, finalize", "query"]
        # The key goes with the start only: the session URL carries its own credential.
        assert ["x-goog-api-key" in headers for _, _, headers in holder[0].requests] == [True, False, False]
