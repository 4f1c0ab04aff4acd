"""The provider's api-server app, mounted by Airflow at ``/gemini-batch``: its routers, and nothing else."""

from __future__ import annotations

from fastapi import FastAPI

from airflow_provider_gemini_batch.plugins.webhooks import router as webhooks_router

__all__ = ["URL_PREFIX", "create_app"]

URL_PREFIX = "/gemini-batch"


def create_app() -> FastAPI:
    """Build the app: the webhook receiver; no docs, no OpenAPI schema, every other path a 404."""
    app = FastAPI(
        title="Gemini Batch",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.include_router(webhooks_router)
    return app
