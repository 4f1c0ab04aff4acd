"""The API key goes only to the connection's origin, and no error message carries it."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.emulator.pytest_plugin import EMULATOR_API_KEY
from airflow_provider_gemini_batch.exceptions import GeminiBatchConnectionError, GeminiBatchError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.hooks._client import ApiKeyAuth
from tests.hooks.conftest import BASE_URL, FAKE_KEY, Handler
from tests.hooks.test_bounded_calls import ScriptedServer

MakeHook = Callable[[Handler], GeminiBatchHook]


def key_sent_to(url: str, origin: str = "https://gemini.test") -> bool:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    with httpx.Client(auth=ApiKeyAuth(FAKE_KEY, origin), transport=httpx.MockTransport(record)) as client:
        client.get(url)
    return "x-goog-api-key" in sent[0].headers


class TestApiKeyAuth:
    @pytest.mark.parametrize(
        "url",
        [
            "https://gemini.test/v1beta/batches/b1",
            "https://GEMINI.test:443/upload/v1beta/files",  # Default port and host case don't matter.
        ],
    )
    def test_key_goes_to_the_base_urls_origin(self, url: str) -> None:
        assert key_sent_to(url)

    @pytest.mark.parametrize(
        "url",
        [
            "https://elsewhere.test/v1beta/batches/b1",
            "http://gemini.test/v1beta/batches/b1",  # Same host without TLS.
            "https://gemini.test:8443/v1beta/batches/b1",
            "https://gemini.test.elsewhere.test/v1beta/batches/b1",
            # Upload sessions carry their own credential (upload_id): the SDK sends no key with them.
            "https://gemini.test/upload/v1beta/files?upload_id=u1",
        ],
    )
    def test_key_never_goes_anywhere_else(self, url: str) -> None:
        assert not key_sent_to(url)

    def test_an_explicit_default_port_in_the_base_url_is_the_same_origin(self) -> None:
        assert key_sent_to("http://localhost/v1beta/batches/b1", origin="http://localhost:80")
        assert not key_sent_to("http://localhost:8080/v1beta/batches/b1", origin="http://localhost:80")


@pytest.fixture
def recorder_elsewhere() -> Iterator[ScriptedServer]:
    """A server on another port that must never hear from the hook."""

    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("x-goog-upload-status", "final")
        handler.send_header("content-length", "0")
        handler.end_headers()

    server = ScriptedServer(reply)
    yield server
    server.close()


class TestUploadUrlOnAnotherOrigin:
    def test_upload_is_refused_before_any_byte_goes_there(
        self, recorder_elsewhere: ScriptedServer, gemini_connection: EmulatorHandle
    ) -> None:
        # No upload_id in this URL: before the fix it received the API key, then the file.
        gemini_connection.control.inject_fault("upload_url", url=f"{recorder_elsewhere.url}/upload/v1beta/files?s=s1")
        hook = GeminiBatchHook(retry_base_delay=0.01)
        with pytest.raises(GeminiBatchError) as raised:
            hook.upload_file(io.BytesIO(b'{"key": "k1"}\n'), display_name="tickets")
        hook.close()
        assert recorder_elsewhere.requests == []
        message = str(raised.value)
        assert recorder_elsewhere.url in message
        assert gemini_connection.base_url in message
        assert EMULATOR_API_KEY not in message
        assert "s=s1" not in message
        assert [entry["path"] for entry in gemini_connection.control.requests()] == ["/upload/v1beta/files"]


class TestMessagesNameTheUrl:
    def test_connection_error_names_the_url_but_not_its_query(self, make_hook: MakeHook) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            if request.headers.get("x-goog-upload-command") == "start":
                return httpx.Response(
                    200,
                    headers={
                        "x-goog-upload-status": "active",
                        "x-goog-upload-url": f"{BASE_URL}/upload/v1beta/files?upload_id=secret-session",
                    },
                )
            raise httpx.ConnectError("refused")

        with pytest.raises(GeminiBatchConnectionError) as raised:
            make_hook(handler).upload_file(io.BytesIO(b'{"key": "k1"}\n'), display_name="tickets")
        message = str(raised.value)
        assert f"{BASE_URL}/upload/v1beta/files" in message
        assert "secret-session" not in message
        assert FAKE_KEY not in message
        assert ".." not in message
