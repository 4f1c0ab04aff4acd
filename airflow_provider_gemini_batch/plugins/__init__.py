"""The provider's Airflow plugin: an app the api-server mounts at ``/gemini-batch``.

It serves ``POST /gemini-batch/webhooks/{conn_id}``, where the Gemini API delivers signed batch
completions (docs/webhooks.md), and the "Gemini Batches" pages at ``/gemini-batch/batches``
(docs/ui.md), a nav entry on Airflow 3.1+. Airflow loads it through the ``airflow.plugins`` entry point.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_gemini_batch.plugins.app import URL_PREFIX, create_app
from airflow_provider_gemini_batch.settings import BATCHES_PAGE_PATH

__all__ = ["GeminiBatchPlugin"]


class GeminiBatchPlugin(AirflowPlugin):
    """Mount the webhook receiver and the "Gemini Batches" pages on the api-server at ``/gemini-batch``."""

    name = "gemini_batch"
    fastapi_apps: list[dict[str, Any]] = [  # noqa: RUF012 - the attribute Airflow reads, a class-level list
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Gemini Batch"}
    ]
    # Airflow 3.1+ shows it in the navigation, inside its UI; 3.0 has no external views: open the URL.
    external_views: list[dict[str, Any]] = [  # noqa: RUF012 - as above
        {
            "name": "Gemini Batches",
            "href": BATCHES_PAGE_PATH,
            "destination": "nav",
            "category": "browse",
            "url_route": "gemini-batches",
        }
    ]
