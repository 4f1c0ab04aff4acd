"""The context caching API: ``cachedContents`` create, get, list, patch, delete (docs/protocol.md "Context caching")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_gemini_batch.emulator._errors import invalid_argument
from airflow_provider_gemini_batch.emulator._requests import api_version, page_parameters, read_json
from airflow_provider_gemini_batch.emulator._responses import json_response
from airflow_provider_gemini_batch.emulator._state import emulator_state
from airflow_provider_gemini_batch.emulator._wire import omit_empty, paginate

__all__ = ["caching_routes"]

#: A cache holds a document: allow bodies as large as an inline batch's.
_BODY_LIMIT = 20 * 1024 * 1024


async def create_cached_content(request: Request) -> Response:
    """``POST /{version}/cachedContents`` → the CachedContent (its token count in ``usageMetadata``)."""
    api_version(request)
    state = emulator_state(request)
    body = await read_json(request, limit=_BODY_LIMIT)
    return json_response(state.caches.create(body, state.config.generation_models).as_json())


async def list_cached_contents(request: Request) -> Response:
    """``GET /{version}/cachedContents`` → ``{"cachedContents": [...], "nextPageToken"}`` (``{}`` when none)."""
    api_version(request)
    page_size, page_token = page_parameters(request)
    try:
        page, next_token = paginate(
            emulator_state(request).caches.oldest_first(),
            page_size=page_size,
            page_token=page_token,
            default_size=100,
            max_size=1000,
        )
    except ValueError as error:
        raise invalid_argument(str(error)) from error
    listing = [cache.as_json() for cache in page]
    return json_response(omit_empty({"cachedContents": listing, "nextPageToken": next_token}))


async def get_cached_content(request: Request) -> Response:
    """``GET /{version}/cachedContents/{id}`` → the CachedContent; 404 once deleted or expired."""
    api_version(request)
    return json_response(emulator_state(request).caches.get(request.path_params["cache_id"]).as_json())


async def update_cached_content(request: Request) -> Response:
    """``PATCH /{version}/cachedContents/{id}`` with ``ttl`` or ``expireTime`` → the CachedContent."""
    api_version(request)
    body = await read_json(request, limit=64 * 1024)
    return json_response(emulator_state(request).caches.update(request.path_params["cache_id"], body).as_json())


async def delete_cached_content(request: Request) -> Response:
    """``DELETE /{version}/cachedContents/{id}`` → ``{}``."""
    api_version(request)
    emulator_state(request).caches.delete(request.path_params["cache_id"])
    return json_response({})


def caching_routes() -> list[Route]:
    """Routes of the context caching API."""
    return [
        Route("/{version}/cachedContents", create_cached_content, methods=["POST"]),
        Route("/{version}/cachedContents", list_cached_contents, methods=["GET"]),
        Route("/{version}/cachedContents/{cache_id}", get_cached_content, methods=["GET"]),
        Route("/{version}/cachedContents/{cache_id}", update_cached_content, methods=["PATCH"]),
        Route("/{version}/cachedContents/{cache_id}", delete_cached_content, methods=["DELETE"]),
    ]
