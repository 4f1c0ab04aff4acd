"""pytest fixtures that run the Gemini Batch emulator; installed with the provider.

The plugin is registered as the ``gemini_batch_emulator`` pytest11 entry point, so in any project
that installs this provider the fixtures are available without a ``conftest.py``. Nothing starts
until a test asks for a fixture, and nothing heavy is imported before: the server (Starlette,
uvicorn) and the control client are imported inside the fixtures, so installing the provider does not
change what an unrelated pytest session imports.

- ``gemini_emulator_server`` (session): one emulator for the whole session.
- ``gemini_emulator``: the same emulator, reset before the test (no jobs, files, faults or
  configuration changes left over from earlier tests); yields an
  :class:`~airflow_provider_gemini_batch.emulator.EmulatorHandle`.
- ``gemini_connection``: as ``gemini_emulator``, and the Airflow connection ``gemini_default``
  points at the emulator (through the ``AIRFLOW_CONN_GEMINI_DEFAULT`` environment variable).

A DAG test then needs nothing else::

    def test_my_batch_dag(gemini_connection):
        gemini_connection.control.configure(running_seconds=0.2)
        dag.test()  # operators using gemini_conn_id="gemini_default" talk to the emulator
        assert gemini_connection.control.created_count() == 1

A create naming a model the emulator does not know is a 404, as on the service. The defaults are the
current Gemini models; a test using another one (a tuned model, say) adds it first::

    gemini_connection.control.configure(generation_models=["gemini-2.5-flash", "tunedModels/mine"])
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.emulator._control import EmulatorHandle

__all__ = ["EMULATOR_API_KEY", "gemini_connection", "gemini_emulator", "gemini_emulator_server"]

#: The API key the session emulator expects.
EMULATOR_API_KEY = "test-emulator-key"


@pytest.fixture(scope="session")
def gemini_emulator_server() -> Iterator[EmulatorHandle]:
    """Start one emulator (API key :data:`EMULATOR_API_KEY`) for the whole test session."""
    from airflow_provider_gemini_batch.emulator._control import EmulatorControl, EmulatorHandle
    from airflow_provider_gemini_batch.emulator._server import run_emulator

    with run_emulator(api_key=EMULATOR_API_KEY) as base_url, EmulatorControl(base_url) as control:
        yield EmulatorHandle(base_url=base_url, api_key=EMULATOR_API_KEY, control=control)


@pytest.fixture
def gemini_emulator(gemini_emulator_server: EmulatorHandle) -> EmulatorHandle:
    """The session emulator, reset to a clean state before this test."""
    gemini_emulator_server.control.reset()
    return gemini_emulator_server


@pytest.fixture
def gemini_connection(gemini_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """A clean emulator, with the Airflow connection ``gemini_default`` pointing at it."""
    connection = {"conn_type": "gemini", "host": gemini_emulator.base_url, "password": gemini_emulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(connection))
    return gemini_emulator
