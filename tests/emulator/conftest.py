"""Fixtures for the emulator tests; the emulator itself comes from the package's pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import types

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


@pytest.fixture(params=VERSIONS)
def client(request: pytest.FixtureRequest, gemini_emulator: EmulatorHandle) -> Iterator[genai.Client]:
    """A google-genai client pointed at the emulator, under /v1beta and under /v1."""
    options = types.HttpOptions(base_url=gemini_emulator.base_url, api_version=request.param)
    sdk = genai.Client(api_key=gemini_emulator.api_key, http_options=options)
    yield sdk
    sdk.close()
