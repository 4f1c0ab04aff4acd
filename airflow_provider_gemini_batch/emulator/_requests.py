"""Reading API requests: the API version in the path, JSON bodies, paging parameters, base URL."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from airflow_provider_gemini_batch.emulator._errors import ApiError, invalid_argument, not_found

__all__ = ["API_VERSIONS", "api_version", "base_url", "page_parameters", "read_json"]

#: Both versions serve the same resources (docs/protocol.md "Versions and auth").
API_VERSIONS = ("v1beta", "v1")


def api_version(request: Request) -> str:
    """Return the ``{version}`` path parameter; 404 for a version the service does not have."""
    version: str = request.path_params["version"]
    if version not in API_VERSIONS:
        raise not_found(f"Unknown API version {version[:20]!r}: use {' or '.join(API_VERSIONS)}.")
    return version


def base_url(request: Request) -> str:
    """``scheme://host:port`` the client used, for the absolute URLs the service hands out."""
    return f"{request.url.scheme}://{request.url.netloc}"


async def read_json(request: Request, *, limit: int) -> dict[str, Any]:
    """Read a JSON object body of at most ``limit`` bytes (an empty body reads as ``{}``)."""
    body = bytearray()
    async for block in request.stream():
        body += block
        if len(body) > limit:
            raise invalid_argument(f"Request payload size exceeds the limit: {limit} bytes.")
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError as error:
        raise invalid_argument(f"Invalid JSON payload received. {error}") from error
    if not isinstance(parsed, dict):
        raise invalid_argument("Invalid JSON payload received: expected an object.")
    return parsed


def page_parameters(request: Request) -> tuple[int | None, str | None]:
    """Read ``pageSize`` and ``pageToken`` (or their snake_case spellings) from the query."""
    query = request.query_params
    raw_size = query.get("pageSize") or query.get("page_size")
    token = query.get("pageToken") or query.get("page_token")
    if raw_size is None:
        return None, token
    try:
        return int(raw_size), token
    except ValueError as error:
        raise ApiError(400, f"Invalid value at 'page_size' (TYPE_INT32), {raw_size[:20]!r}") from error
