"""Error mapping and the retry decision, shared by the sync and async clients.

HTTP status → exception class happens here and nowhere else. Retries cover 408, 429, 5xx and
connection errors, with jittered exponential backoff that honours ``Retry-After`` and
``RetryInfo.retryDelay``. A batch create is never resent once its body may have reached the server.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchAmbiguousCreateError,
    GeminiBatchAPIError,
    GeminiBatchConnectionError,
    GeminiBatchInvalidArgumentError,
    GeminiBatchNotFoundError,
    GeminiBatchPermissionError,
    GeminiBatchRateLimitError,
    GeminiBatchServerError,
)
from airflow_provider_gemini_batch.hooks._api import ApiCall

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# A create rejected with this never reached the backend, so resending cannot duplicate a job. A 503
# may come from a front end after the backend accepted the job: it counts as ambiguous.
CREATE_SAFE_STATUS = frozenset({429})
# Transport errors raised before any byte of the request left this machine.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
MAX_SERVER_DELAY = 600.0

_HINTS = {
    400: "Fix the request: the message says which field.",
    401: "Check the API key in the connection's password field.",
    403: "Check the API key in the connection's password field, and that the file exists and was "
    "uploaded with the same key (files expire after 48 h).",
    404: "Check the model or batch name.",
    429: "Quota or enqueued-token limit reached: retry later, or reduce concurrent jobs.",
}


def error_from_response(response: httpx.Response, description: str) -> GeminiBatchAPIError:
    """Build the exception for an error reply. Never includes headers, the URL's query or the body whole."""
    status_code = response.status_code
    error = _error_body(response)
    status = error.get("status") if isinstance(error.get("status"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else response.reason_phrase
    raw_details = error.get("details")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    reason = next((d.get("reason") for d in details if isinstance(d, dict) and d.get("reason")), None)
    cls: type[GeminiBatchAPIError]
    if status_code == 400:
        cls = GeminiBatchInvalidArgumentError
    elif status_code in (401, 403):
        cls = GeminiBatchPermissionError
    elif status_code == 404:
        cls = GeminiBatchNotFoundError
    elif status_code == 429:
        cls = GeminiBatchRateLimitError
    elif status_code in RETRYABLE_STATUS or status_code >= 500:
        cls = GeminiBatchServerError
    else:
        cls = GeminiBatchAPIError
    hint = _HINTS.get(status_code, "The service failed: retry later." if status_code >= 500 else "")
    if reason == "API_KEY_INVALID":
        hint = _HINTS[401]
    return cls(
        status_code,
        status,
        f"{description}: {message}",
        hint=hint,
        reason=reason,
        retry_after=server_delay(response, details),
    )


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def server_delay(response: httpx.Response, details: list[Any]) -> float | None:
    """The delay the server asked for: ``RetryInfo.retryDelay`` first, then ``Retry-After``.

    ``Retry-After`` is seconds or an HTTP date; a value that is neither is ignored, not raised.
    """
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return _clamp(float(match.group(1)))
    header = response.headers.get("retry-after")
    if not header:
        return None
    try:
        return _clamp(float(header))
    except ValueError:
        pass
    try:
        return _clamp(email.utils.parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _clamp(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_SERVER_DELAY)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait.

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param base_delay: the first backoff, doubled on each retry, jittered down by up to half.
    :param max_delay: the cap on our own backoff (a longer server-requested delay is still honoured).
    """

    max_retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0

    def backoff(self, attempt: int, server_delay: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        ours = min(self.max_delay, self.base_delay * 2**attempt) * random.uniform(0.5, 1.0)
        if server_delay is None:
            return float(ours)
        # Honour the server's delay, plus a little jitter so that many clients don't return together.
        return server_delay + random.uniform(0.0, min(1.0, self.base_delay) * 0.1)

    def on_status(self, error: GeminiBatchAPIError, attempt: int, call: ApiCall[Any]) -> float:
        """Return the delay before retrying after an error reply, or raise when retrying is wrong."""
        if error.http_status not in RETRYABLE_STATUS:
            raise error
        if not call.retry_safe and error.http_status not in CREATE_SAFE_STATUS:
            # A 408/5xx to a create may come after the job was made: its outcome is unknown.
            raise ambiguous_create(call, f"HTTP {error.http_status} {error.status or ''}".strip()) from error
        if attempt >= self.max_retries:
            raise error
        return self.backoff(attempt, error.retry_after)

    def on_transport_error(self, exc: httpx.TransportError, attempt: int, call: ApiCall[Any]) -> float:
        """Return the delay before retrying after a transport error, or raise the right exception."""
        if not call.retry_safe and not isinstance(exc, _NOT_SENT_ERRORS):
            raise ambiguous_create(call, type(exc).__name__) from exc
        if attempt >= self.max_retries:
            raise connection_error(call.description, exc, attempt) from exc
        return self.backoff(attempt)


def ambiguous_create(call: ApiCall[Any], cause: str) -> GeminiBatchAmbiguousCreateError:
    """The error for a create whose reply was lost: a job may exist, so it must not be resent."""
    model = call.path.rsplit(":", 1)[0]
    display_name = ((call.json or {}).get("batch") or {}).get("displayName")
    return GeminiBatchAmbiguousCreateError(model, display_name, cause)


def connection_error(description: str, exc: BaseException, attempt: int) -> GeminiBatchConnectionError:
    """The error for a request that never got a reply, after every retry; it names the URL, never its query."""
    tries = f" after {attempt + 1} attempts" if attempt else ""
    url = _url_without_query(exc)
    where = f" at {url}" if url else ""
    return GeminiBatchConnectionError(
        f"Could not {description}{where}{tries}: {type(exc).__name__}. Check the connection's host and the "
        "network; raise the connection's 'timeout' or 'max_retries' extras if the service is slow."
    )


def _url_without_query(exc: BaseException) -> str | None:
    """The failed request's URL, without user info or query: an upload URL's query is its credential."""
    if not isinstance(exc, httpx.RequestError):
        return None
    try:
        url = exc.request.url
    except RuntimeError:  # Raised outside a request: httpx attached none.
        return None
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"
