"""Running the emulator: uvicorn in a background thread, for tests, demos and the command line."""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn

from airflow_provider_gemini_batch.emulator._app import create_app
from airflow_provider_gemini_batch.emulator._config import (
    DEFAULT_CHUNK_GRANULARITY,
    DEFAULT_EMBEDDING_MODELS,
    DEFAULT_GENERATION_MODELS,
)

__all__ = ["run_emulator"]

_STARTUP_TIMEOUT_SECONDS = 10.0
_SHUTDOWN_TIMEOUT_SECONDS = 10.0


class _HideDeliberateHangUps(logging.Filter):
    """Keep uvicorn quiet about the replies the emulator breaks on purpose (injected faults)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop the one record uvicorn writes when a reply is left incomplete on purpose."""
        return record.getMessage() != "ASGI callable returned without completing response."


_HANG_UP_FILTER = _HideDeliberateHangUps()


@contextlib.contextmanager
def run_emulator(
    *,
    api_key: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | Path | None = None,
    pending_seconds: float = 0.0,
    running_seconds: float = 0.0,
    chunk_granularity: int = DEFAULT_CHUNK_GRANULARITY,
    generation_models: Sequence[str] = DEFAULT_GENERATION_MODELS,
    embedding_models: Sequence[str] = DEFAULT_EMBEDDING_MODELS,
    job_webhook_secret: str | None = None,
) -> Iterator[str]:
    """Serve the emulator in a background thread; yield its base URL once it accepts connections.

    On exit the server shuts down (webhook deliveries in flight are cancelled) and its thread ends;
    a temporary data directory is removed.

    :param api_key: the key API requests must carry; ``None`` accepts any request.
    :param host: the interface to listen on; keep the default, loopback only.
    :param port: the port; 0 picks a free one.
    :param data_dir: where file bytes are kept; by default a temporary directory.
    :param pending_seconds: how long new jobs stay PENDING.
    :param running_seconds: how long they then stay RUNNING.
    :param chunk_granularity: the upload chunk granularity announced to clients.
    :param generation_models: the models generation batches may name; any other is 404 NOT_FOUND.
    :param embedding_models: the models embeddings batches may name.
    :param job_webhook_secret: the ``whsec_`` secret signing deliveries to jobs' own webhook URIs;
        ``None`` generates one (read it with ``EmulatorControl.job_webhook_secret()``).
    :raises ValueError: on an invalid setting, before anything starts.
    :raises RuntimeError: if the server does not start within 10 seconds.
    """
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="gemini-batch-emulator-"))
        app = create_app(
            data_dir=data_dir,
            api_key=api_key,
            pending_seconds=pending_seconds,
            running_seconds=running_seconds,
            chunk_granularity=chunk_granularity,
            generation_models=generation_models,
            embedding_models=embedding_models,
            job_webhook_secret=job_webhook_secret,
        )
        listener = stack.enter_context(_bound_socket(host, port))
        bound_port = listener.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", ws="none")
        server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(_HANG_UP_FILTER)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, name=f"gemini-batch-emulator-{bound_port}", daemon=True
        )
        thread.start()
        try:
            _wait_until_started(server, thread)
            yield f"http://{host}:{bound_port}"
        finally:
            server.should_exit = True
            thread.join(_SHUTDOWN_TIMEOUT_SECONDS)


@contextlib.contextmanager
def _bound_socket(host: str, port: int) -> Iterator[socket.socket]:
    """Bind the listening socket up front, so the real port is known before the server starts."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        yield listener
    finally:
        listener.close()


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("The Gemini Batch emulator did not start; see the uvicorn log above.")
        time.sleep(0.01)
