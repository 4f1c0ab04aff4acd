"""Airflow finds the plugin through the ``airflow.plugins`` entry point and mounts its app at /gemini-batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_the_plugins_manager_lists_the_app_at_gemini_batch() -> None:
    from airflow import plugins_manager

    from airflow_provider_gemini_batch.plugins import GeminiBatchPlugin

    plugins_manager.ensure_plugins_loaded()
    info = {plugin["name"]: plugin for plugin in plugins_manager.get_plugin_info()}

    (app,) = info["gemini_batch"]["fastapi_apps"]
    assert app["url_prefix"] == "/gemini-batch"
    assert app["app"] == "fastapi.applications.FastAPI"
    assert any(isinstance(plugin, GeminiBatchPlugin) or plugin is GeminiBatchPlugin for plugin in loaded_plugins())


def loaded_plugins() -> list[object]:
    from airflow import plugins_manager

    if hasattr(plugins_manager, "_get_plugins"):  # Airflow 3.1+
        return list(plugins_manager._get_plugins()[0])
    return list(plugins_manager.plugins or [])


def test_airflow_plugins_shows_it_without_import_errors(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), "plugins", "--output", "json"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    payload = next(line for line in result.stdout.splitlines() if line.startswith(("[{", "[]")))
    listed = {plugin["name"]: plugin for plugin in json.loads(payload)}

    assert "gemini_batch" in listed
    assert "already registered" not in result.stdout + result.stderr


# Airflow 3.0's own API models use Pydantic's class-based config, and its routes a constant newer Starlette
# deprecates: Airflow's debt, not ours, and either would fail this test under filterwarnings=error.
@pytest.mark.filterwarnings("ignore:Support for class-based `config` is deprecated")
@pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated")
def test_the_api_server_serves_the_route_to_unauthenticated_callers(signing_secret: str, asset_id: int) -> None:
    """Airflow's own api-server app: a signed delivery needs no Airflow login; nothing else of the app is exposed."""
    from airflow.api_fastapi.app import create_app
    from starlette.testclient import TestClient

    from .conftest import CONN_ID, completion_event, signed_headers

    body = completion_event("batches/through-the-api-server")
    with TestClient(create_app(apps="core")) as client:
        delivered = client.post(
            f"/gemini-batch/webhooks/{CONN_ID}", content=body, headers=signed_headers(body, signing_secret)
        )
        unsigned = client.post(f"/gemini-batch/webhooks/{CONN_ID}", content=body)
        docs = client.get("/gemini-batch/docs")

    assert delivered.status_code == 200
    assert delivered.json()["status"] == "recorded"
    assert unsigned.status_code == 401
    assert docs.status_code == 404


def test_airflow_lists_the_page_as_a_navigation_entry_where_it_has_them() -> None:
    from airflow import plugins_manager

    plugins_manager.ensure_plugins_loaded()
    info = {plugin["name"]: plugin for plugin in plugins_manager.get_plugin_info()}
    if not hasattr(plugins_manager.AirflowPlugin, "external_views"):
        pytest.skip("Airflow 3.0 has no external views: the page is reached by its URL")

    (view,) = info["gemini_batch"]["external_views"]
    assert view["name"] == "Gemini Batches"
    assert view["href"] == "/gemini-batch/batches"
    assert view["destination"] == "nav"
