"""Fixtures for hook tests: a ``gemini`` connection in the environment and hooks on a mock transport."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook

FAKE_KEY = "fake-key-for-unit-tests-0123456789"
BASE_URL = "https://gemini.test"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def mock_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "gemini", "host": BASE_URL, "password": FAKE_KEY, "extra": {"max_retries": 3}}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))


@pytest.fixture
def make_hook(mock_connection: None) -> Callable[[Handler], GeminiBatchHook]:
    """Build a hook whose sync and async clients answer through ``handler``, with near-zero backoff."""

    def make(handler: Handler) -> GeminiBatchHook:
        async def async_handler(request: httpx.Request) -> httpx.Response:
            await request.aread()
            return handler(request)

        return GeminiBatchHook(
            transport=httpx.MockTransport(handler),
            async_transport=httpx.MockTransport(async_handler),
            retry_base_delay=0.001,
        )

    return make


def error_reply(code: int, status: str, message: str, **kwargs: object) -> httpx.Response:
    details = kwargs.pop("details", None)
    body: dict[str, object] = {"code": code, "message": message, "status": status}
    if details is not None:
        body["details"] = details
    return httpx.Response(code, json={"error": body}, **kwargs)  # type: ignore[arg-type]


def operation(name: str = "batches/b1", state: str = "BATCH_STATE_PENDING", **metadata: object) -> dict[str, object]:
    meta: dict[str, object] = {"model": "models/gemini-2.5-flash", "state": state, "name": name, **metadata}
    meta["@type"] = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
    return {"name": name, "metadata": meta}


@pytest.fixture
def hook(gemini_connection: EmulatorHandle) -> Iterator[GeminiBatchHook]:
    """A hook on the emulator's ``gemini_default`` connection, with near-zero backoff; closed after."""
    hook = GeminiBatchHook(retry_base_delay=0.01)
    yield hook
    hook.close()
