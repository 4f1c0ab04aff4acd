"""The pytest fixtures users get with the provider."""

from __future__ import annotations

import json
import os

import httpx

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.emulator.pytest_plugin import EMULATOR_API_KEY

from ._support import create, inline_config


def test_gemini_emulator_is_a_running_emulator_with_the_test_key(gemini_emulator: EmulatorHandle) -> None:
    api = httpx.Client(base_url=gemini_emulator.base_url, headers={"x-goog-api-key": EMULATOR_API_KEY})
    with api:
        create(api, "v1beta", inline_config("leftover"))
    gemini_emulator.control.configure(running_seconds=5)
    gemini_emulator.control.inject_fault("status", status=500, count=100)

    assert gemini_emulator.api_key == EMULATOR_API_KEY
    assert gemini_emulator.control.created_count() == 1


def test_gemini_emulator_is_reset_before_each_test(gemini_emulator: EmulatorHandle) -> None:
    # Runs after the test above, which left a job, a configuration change and a fault behind.
    response = httpx.get(f"{gemini_emulator.base_url}/v1beta/batches", headers={"x-goog-api-key": EMULATOR_API_KEY})

    assert gemini_emulator.control.created_count() == 0
    assert gemini_emulator.control.config()["running_seconds"] == 0
    assert response.json() == {}


def test_gemini_connection_points_airflow_at_the_emulator(gemini_connection: EmulatorHandle) -> None:
    connection = json.loads(os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"])

    assert connection == {"conn_type": "gemini", "host": gemini_connection.base_url, "password": EMULATOR_API_KEY}
