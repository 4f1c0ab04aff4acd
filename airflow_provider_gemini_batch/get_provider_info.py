"""Provider metadata that Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_gemini_batch import __version__
from airflow_provider_gemini_batch.settings import CONFIG_SECTION, CONNECTION_FIELDS, CONNECTION_FORM


def get_provider_info() -> dict[str, Any]:
    """Describe the provider, its hook and its ``gemini`` connection type to Airflow."""
    return {
        "package-name": "airflow-provider-gemini-batch",
        "name": "Gemini Batch",
        "description": "Run Google Gemini API Batch Mode jobs from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Gemini Batch API",
                "external-doc-url": "https://ai.google.dev/gemini-api/docs/batch-mode",
                "tags": ["gen-ai"],
            }
        ],
        "operators": [
            {
                "integration-name": "Gemini Batch API",
                "python-modules": [
                    "airflow_provider_gemini_batch.operators.batch",
                    "airflow_provider_gemini_batch.operators.caching",
                    "airflow_provider_gemini_batch.operators.files",
                    "airflow_provider_gemini_batch.operators.media",
                    "airflow_provider_gemini_batch.operators.webhooks",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Gemini Batch API",
                "python-modules": ["airflow_provider_gemini_batch.sensors.gemini_batch"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Gemini Batch API",
                "python-modules": [
                    "airflow_provider_gemini_batch.triggers.gemini_batch",
                    "airflow_provider_gemini_batch.triggers.completions",
                    "airflow_provider_gemini_batch.triggers.quota",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "Gemini Batch API",
                "python-modules": ["airflow_provider_gemini_batch.hooks.gemini_batch"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_gemini_batch.hooks.gemini_batch.GeminiBatchHook",
                "hook-name": "Gemini Batch",
                "connection-type": "gemini",
                "conn-fields": CONNECTION_FIELDS,
                "ui-field-behaviour": {key.replace("_", "-"): value for key, value in CONNECTION_FORM.items()},
            }
        ],
        "extra-links": ["airflow_provider_gemini_batch.links.GeminiBatchLink"],
        "config": CONFIG_SECTION,
        # No "plugins" entry: Airflow loads the plugin through the package's ``airflow.plugins`` entry point.
        # Listed here too, Airflow 3.1+ would load it a second time when [core] lazy_discover_providers is
        # off, and report "already registered" as a plugin import error.
    }
