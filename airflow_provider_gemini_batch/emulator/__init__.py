"""A local emulator of the Gemini API Batch Mode, for tests, demos and benchmarks.

It is a real HTTP server (Starlette on uvicorn, loopback only) that speaks the wire protocol of
``generativelanguage.googleapis.com`` closely enough that the official ``google-genai`` SDK runs
against it unmodified: resumable uploads, files, batch jobs whose state moves with the clock, a
deterministic fake model, results files, API-key checks and injectable faults.

Run it::

    with run_emulator(api_key="test-key", running_seconds=0.5) as base_url:
        control = EmulatorControl(base_url)
        ...

or from a shell: ``python -m airflow_provider_gemini_batch.emulator --port 8765``. In pytest, the
``gemini_emulator`` and ``gemini_connection`` fixtures (see ``pytest_plugin``) start one for you.
"""

from __future__ import annotations

from airflow_provider_gemini_batch.emulator._app import create_app
from airflow_provider_gemini_batch.emulator._control import EmulatorControl, EmulatorHandle
from airflow_provider_gemini_batch.emulator._fake_model import ECHO_PREFIX, FAILURE_MARKER
from airflow_provider_gemini_batch.emulator._server import run_emulator

__all__ = [
    "ECHO_PREFIX",
    "FAILURE_MARKER",
    "EmulatorControl",
    "EmulatorHandle",
    "create_app",
    "run_emulator",
]
