"""Model methods other than batches: ``countTokens`` (docs/protocol.md "Token counting")."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_gemini_batch.emulator._errors import invalid_argument, model_not_found
from airflow_provider_gemini_batch.emulator._fake_model import token_count
from airflow_provider_gemini_batch.emulator._requests import api_version, read_json
from airflow_provider_gemini_batch.emulator._responses import json_response
from airflow_provider_gemini_batch.emulator._state import emulator_state
from airflow_provider_gemini_batch.emulator._wire import omit_empty, read_field

__all__ = ["model_routes"]

_BODY_LIMIT = 20 * 1024 * 1024


async def count_tokens(request: Request) -> Response:
    """``POST /{version}/models/{model}:countTokens`` with ``contents`` or ``generateContentRequest`` → ``totalTokens``.

    The count is the fake model's (words), so it is deterministic; a request naming a context cache
    adds the cache's tokens and reports them as ``cachedContentTokenCount``.
    """
    version = api_version(request)
    state = emulator_state(request)
    model = f"models/{request.path_params['model']}"
    if model not in state.config.generation_models and model not in state.config.embedding_models:
        raise model_not_found(model, version, "countTokens")
    body = await read_json(request, limit=_BODY_LIMIT)
    wrapped = read_field(body, "generateContentRequest")
    generate = wrapped if isinstance(wrapped, Mapping) else body
    contents = read_field(generate, "contents")
    if not isinstance(contents, list):
        raise invalid_argument("countTokens needs contents (a list of Content), or a generateContentRequest with them.")
    cached = state.caches.tokens_for(generate, model)
    if isinstance(cached, str):
        raise invalid_argument(cached)
    total = token_count(contents, read_field(generate, "systemInstruction")) + cached
    return json_response(omit_empty({"totalTokens": total, "cachedContentTokenCount": cached}))


def model_routes() -> list[Route]:
    """Routes of model methods served here."""
    return [Route("/{version}/models/{model}:countTokens", count_tokens, methods=["POST"])]
