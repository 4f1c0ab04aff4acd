"""Error replies and failed requests become exceptions here, and nowhere else.

HTTP status → exception class (``exceptions.py`` draws the tree); the delay a reply asks for
(``RetryInfo.retryDelay``, ``Retry-After``); a create whose reply was lost; a request that never got
a reply. Messages never include headers, the URL's query or a body whole.
"""

from __future__ import annotations

import email.utils
import re
import time
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
from airflow_provider_gemini_batch.hooks._endpoints import ApiCall

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
    elif status_code == 408 or status_code >= 500:
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
