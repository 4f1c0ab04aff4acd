"""The emulator as a Starlette ASGI application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_gemini_batch.emulator._api_batches import batch_routes
from airflow_provider_gemini_batch.emulator._api_caching import caching_routes
from airflow_provider_gemini_batch.emulator._api_control import control_routes
from airflow_provider_gemini_batch.emulator._api_files import file_routes
from airflow_provider_gemini_batch.emulator._api_models import model_routes
from airflow_provider_gemini_batch.emulator._api_webhooks import webhook_routes
from airflow_provider_gemini_batch.emulator._config import (
    DEFAULT_CHUNK_GRANULARITY,
    DEFAULT_EMBEDDING_MODELS,
    DEFAULT_GENERATION_MODELS,
    EmulatorConfig,
)
from airflow_provider_gemini_batch.emulator._errors import ApiError
from airflow_provider_gemini_batch.emulator._middleware import ApiFrontDoor
from airflow_provider_gemini_batch.emulator._responses import error_response
from airflow_provider_gemini_batch.emulator._state import EmulatorState

__all__ = ["create_app"]


def create_app(
    *,
    data_dir: str | Path,
    api_key: str | None = None,
    pending_seconds: float = 0.0,
    running_seconds: float = 0.0,
    chunk_granularity: int = DEFAULT_CHUNK_GRANULARITY,
    generation_models: Sequence[str] = DEFAULT_GENERATION_MODELS,
    embedding_models: Sequence[str] = DEFAULT_EMBEDDING_MODELS,
    job_webhook_secret: str | None = None,
) -> Starlette:
    """Build the emulator application; serve it with any ASGI server, its lifespan on.

    The lifespan starts the webhook courier, which notices jobs ending and delivers their events;
    without it the API works but delivers no webhooks.

    :param data_dir: an existing directory where file bytes are kept (its ``files``, ``uploads``
        and ``jobs`` subdirectories belong to the emulator and are emptied on reset).
    :param api_key: the key API requests must carry; ``None`` accepts any request.
    :param pending_seconds: how long new jobs stay PENDING.
    :param running_seconds: how long they then stay RUNNING.
    :param chunk_granularity: the upload chunk granularity announced to clients.
    :param generation_models: the models generation batches may name (``gemini-2.5-flash``,
        ``models/...``, ``tunedModels/...``); any other is 404 NOT_FOUND, as on the service.
    :param embedding_models: the models embeddings batches may name.
    :param job_webhook_secret: the ``whsec_`` secret signing deliveries to jobs' own
        ``webhookConfig.uris``; ``None`` generates one.
    :raises ValueError: on an invalid timing, granularity, model name or secret.
    """
    secret = {"job_webhook_secret": job_webhook_secret} if job_webhook_secret is not None else {}
    config = EmulatorConfig().merged(
        {
            **secret,
            "pending_seconds": pending_seconds,
            "running_seconds": running_seconds,
            "chunk_granularity": chunk_granularity,
            "generation_models": list(generation_models),
            "embedding_models": list(embedding_models),
        }
    )
    state = EmulatorState(data_dir=Path(data_dir), api_key=api_key, config=config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.courier.start()
        try:
            yield
        finally:
            await state.courier.stop()

    app = Starlette(
        routes=control_routes() + file_routes() + batch_routes() + webhook_routes() + caching_routes() + model_routes(),
        middleware=[Middleware(ApiFrontDoor, state=state)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.emulator = state
    return app


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(error)


async def _http_error(request: Request, error: Exception) -> Response:
    """Unknown paths and methods, answered in the service's error shape."""
    assert isinstance(error, HTTPException)
    message = f"Method {request.method} {request.url.path} is not served by the Gemini Batch emulator."
    return error_response(ApiError(error.status_code, message, headers=dict(error.headers or {})))


async def _internal_error(request: Request, error: Exception) -> Response:
    """A bug in the emulator: a 500 in the service's shape (the traceback goes to the log)."""
    return error_response(ApiError(500, f"Emulator error: {type(error).__name__}."))
