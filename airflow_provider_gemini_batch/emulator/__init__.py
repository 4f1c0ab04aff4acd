"""A local emulator of the Gemini API Batch Mode, for tests, demos and benchmarks.

It is a real HTTP server (Starlette on uvicorn, loopback only) that speaks the wire protocol of
``generativelanguage.googleapis.com`` closely enough that the official ``google-genai`` SDK runs
against it unmodified: resumable uploads, files, batch jobs whose state moves with the clock, a
deterministic fake model, results files, API-key checks, webhooks (the resource, and signed
deliveries when a job ends) and injectable faults.

Run it::

    with run_emulator(api_key="test-key", running_seconds=0.5) as base_url:
        control = EmulatorControl(base_url)
        ...

or from a shell: ``python -m airflow_provider_gemini_batch.emulator --port 8765``. In pytest, the
``gemini_emulator`` and ``gemini_connection`` fixtures (see ``pytest_plugin``) start one for you.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Imported on first use, not with the package: the pytest plugin (``pytest_plugin``) lives in this
# package and is loaded into every pytest session of a project that installs the provider, which
# must not pay for Starlette and uvicorn unless a test starts an emulator.
_PUBLIC_MODULES = {
    "ECHO_PREFIX": "_fake_model",
    "FAILURE_MARKER": "_fake_model",
    "EmulatorControl": "_control",
    "EmulatorHandle": "_control",
    "create_app": "_app",
    "run_emulator": "_server",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is used."""
    module_name = _PUBLIC_MODULES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
