"""What happens to every API request around its route: logging, the API key check, status faults,
and the faults that reshape a reply (``_reply_faults``).

Plain ASGI, not Starlette's ``BaseHTTPMiddleware``: a broken reply (see ``_responses``) must reach
uvicorn as it is. Control requests (``/_emulator/...``) pass straight through.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_gemini_batch.emulator._errors import ApiError
from airflow_provider_gemini_batch.emulator._reply_faults import trickling, truncating
from airflow_provider_gemini_batch.emulator._responses import error_response
from airflow_provider_gemini_batch.emulator._state import EmulatorState

__all__ = ["CONTROL_PREFIX", "ApiFrontDoor"]

CONTROL_PREFIX = "/_emulator/"

# The live service's answers to a missing and to a wrong key (docs/protocol.md "Errors").
_MISSING_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_INVALID_KEY_DETAILS = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
]


class ApiFrontDoor:
    """Log each API request, check its API key, answer injected ``status`` faults and shape replies.

    :param app: the routed application behind the door.
    :param state: the emulator whose key, faults and request log apply.
    """

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        status, complete = 0, False

        async def watching_send(message: Message) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await error_response(refusal)(scope, receive, watching_send)
            else:
                await self.app(scope, receive, self._shaped(scope, receive, watching_send))
        finally:
            # A reply that never completed was a dropped connection: log it as status 0.
            self.state.log_request(scope["method"], scope["path"], status if complete else 0)

    def _refusal(self, scope: Scope) -> ApiError | None:
        """The error this request gets before reaching its route, if any."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        # An upload URL carries its own credential, the upload_id: the SDK sends no key with chunks.
        is_upload_chunk = scope["path"].startswith("/upload/") and "upload_id" in query
        if self.state.api_key is not None and not is_upload_chunk:
            refusal = self._key_refusal(Headers(scope=scope).get("x-goog-api-key") or _first(query.get("key")))
            if refusal is not None:
                return refusal
        fault = self.state.faults.take("status", scope["method"], scope["path"])
        return fault.as_error() if fault is not None else None

    def _shaped(self, scope: Scope, receive: Receive, send: Send) -> Send:
        """``send``, wrapped by the ``truncate_reply`` and ``trickle`` faults this request matches."""
        method, path = scope["method"], scope["path"]
        truncate = self.state.faults.take("truncate_reply", method, path)
        if truncate is not None:
            send = truncating(send, truncate.after_bytes)
        trickle = self.state.faults.take("trickle", method, path)
        if trickle is not None:
            send = trickling(send, receive, trickle.seconds)
        return send

    def _key_refusal(self, key: str | None) -> ApiError | None:
        """403 without a key, 400 API_KEY_INVALID with a wrong one; never echo the key."""
        assert self.state.api_key is not None
        if not key:
            return ApiError(403, _MISSING_KEY)
        if not hmac.compare_digest(key.encode(), self.state.api_key.encode()):
            return ApiError(400, "API key not valid. Please pass a valid API key.", details=_INVALID_KEY_DETAILS)
        return None


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None
