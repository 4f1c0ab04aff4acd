"""Test-session set-up: a private AIRFLOW_HOME with a SQLite metadata DB, set before Airflow is imported."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="gemini-batch-tests-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ.pop("AIRFLOW_CONN_GEMINI_DEFAULT", None)

from airflow_provider_gemini_batch.emulator import EmulatorHandle  # noqa: E402 - after the environment is set


@pytest.fixture
def no_retry_connection(gemini_connection: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """``gemini_connection`` with ``max_retries=0``: every failed request surfaces at once."""
    conn = {
        "conn_type": "gemini",
        "host": gemini_connection.base_url,
        "password": gemini_connection.api_key,
        "extra": {"max_retries": 0},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))
    return gemini_connection


@pytest.fixture(params=[True, False], ids=["deferrable", "sync"])
def deferrable(request: pytest.FixtureRequest) -> bool:
    """Run the test once deferred (the trigger, inline) and once waiting on the worker."""
    return bool(request.param)
