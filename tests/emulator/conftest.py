"""Fixtures for the emulator tests; the emulator itself comes from the package's pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorControl, EmulatorHandle

from ._support import VERSIONS


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs under /v1beta and under /v1."""
    version: str = request.param
    return version


@pytest.fixture
def api(gemini_emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    """An httpx client for the (freshly reset) session emulator, sending its API key."""
    headers = {"x-goog-api-key": gemini_emulator.api_key or ""}
    with httpx.Client(base_url=gemini_emulator.base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def control(gemini_emulator: EmulatorHandle) -> EmulatorControl:
    """The control API of the (freshly reset) session emulator."""
    return gemini_emulator.control
