"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records what it is sent."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """Record every POST; answer the first ones with ``statuses``, then ``default``.

    ``hold_seconds`` makes each answer wait that long (a slow receiver). Use it as a context manager:
    it listens on a free port on entry and stops on exit.
    """

    def __init__(self, statuses: Iterable[int] = (), *, default: int = 200, hold_seconds: float = 0.0) -> None:
        self._statuses = list(statuses)
        self._default = default
        self._hold_seconds = hold_seconds
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        return f"http://127.0.0.1:{self._server.server_port}/hooks/test"

    @property
    def received(self) -> list[Received]:
        """What arrived so far, in order."""
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait until ``count`` requests arrived; return them all."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{count} deliveries expected, got {len(self.received)}"
            time.sleep(0.01)
        return self.received

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _answer(self, received: Received) -> int:
        with self._lock:
            self._received.append(received)
            return self._statuses.pop(0) if self._statuses else self._default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = receiver._answer(Received(self.path, headers, body, time.monotonic()))
                if receiver._hold_seconds:
                    time.sleep(receiver._hold_seconds)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
