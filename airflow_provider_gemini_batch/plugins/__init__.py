"""The provider's Airflow plugin: an app the api-server mounts at ``/gemini-batch``.

It serves ``POST /gemini-batch/webhooks/{conn_id}``, where the Gemini API delivers signed batch
completions (docs/webhooks.md). Airflow loads it through the ``airflow.plugins`` entry point.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_gemini_batch.plugins.app import URL_PREFIX, create_app

__all__ = ["GeminiBatchPlugin"]


class GeminiBatchPlugin(AirflowPlugin):
    """Mount the webhook receiver on the api-server at ``/gemini-batch``."""

    name = "gemini_batch"
    fastapi_apps: list[dict[str, Any]] = [  # noqa: RUF012 - the attribute Airflow reads, a class-level list
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Gemini Batch webhooks"}
    ]
