"""The provider's api-server app, mounted by Airflow at ``/gemini-batch``: its routers, and nothing else."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from airflow_provider_gemini_batch.plugins._page_access import PageRefused
from airflow_provider_gemini_batch.plugins.batches_page import refused_page
from airflow_provider_gemini_batch.plugins.batches_page import router as batches_router
from airflow_provider_gemini_batch.plugins.webhooks import router as webhooks_router
from airflow_provider_gemini_batch.settings import PLUGIN_URL_PREFIX

__all__ = ["URL_PREFIX", "create_app"]

URL_PREFIX = PLUGIN_URL_PREFIX


def create_app() -> FastAPI:
    """Build the app: the webhook receiver and the "Gemini Batches" pages; no docs, no OpenAPI schema."""
    app = FastAPI(
        title="Gemini Batch",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.include_router(webhooks_router)
    app.include_router(batches_router)

    @app.exception_handler(PageRefused)
    async def refused(request: Request, refused: PageRefused) -> HTMLResponse:
        return refused_page(request, refused)

    return app
