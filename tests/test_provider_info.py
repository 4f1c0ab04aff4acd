"""Airflow discovers the provider, its hook and the ``gemini`` connection type through the entry point."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.get_provider_info import get_provider_info
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.settings import DEFAULT_MAX_CONCURRENT_POLLS, max_concurrent_polls


def airflow_cli_json(tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    """Run the ``airflow`` CLI of this environment and parse its JSON output (log lines skipped)."""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    payload = next(line for line in result.stdout.splitlines() if line.startswith(("[{", "[]")))
    parsed: list[dict[str, Any]] = json.loads(payload)
    return parsed


def test_airflow_providers_list_shows_the_provider(tmp_path: Path) -> None:
    listed = {entry["package_name"]: entry for entry in airflow_cli_json(tmp_path, "providers", "list")}
    assert listed["airflow-provider-gemini-batch"]["version"] == get_provider_info()["versions"][0]


def test_the_gemini_connection_type_is_registered(tmp_path: Path) -> None:
    hooks = {entry["connection_type"]: entry for entry in airflow_cli_json(tmp_path, "providers", "hooks")}
    assert hooks["gemini"]["class"] == "airflow_provider_gemini_batch.hooks.gemini_batch.GeminiBatchHook"
    assert hooks["gemini"]["hook_name"] == "Gemini Batch"


def test_the_connection_form_is_labelled() -> None:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    if AIRFLOW_V_3_3_PLUS:  # Reads "ui-field-behaviour" from the provider info.
        from airflow.providers_manager import ProvidersManager

        behaviour = ProvidersManager().field_behaviours["gemini"]
    else:  # Reads the hook's classmethod, and only where flask-appbuilder is installed.
        behaviour = GeminiBatchHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["password"] == "API key"
    assert "login" in behaviour["hidden_fields"]


def airflow_cli_text(tmp_path: Path, *args: str, **env: str) -> str:
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), *args],
        env={**os.environ, "AIRFLOW_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def test_the_provider_config_section_is_shown_by_airflow_config_list(tmp_path: Path) -> None:
    listed = airflow_cli_text(tmp_path, "config", "list", "--section", "gemini_batch")
    assert "[gemini_batch]" in listed
    assert "max_concurrent_polls" in listed
    default = airflow_cli_text(tmp_path, "config", "get-value", "gemini_batch", "max_concurrent_polls")
    assert default.strip().splitlines()[-1] == str(DEFAULT_MAX_CONCURRENT_POLLS)
    overridden = airflow_cli_text(
        tmp_path,
        "config",
        "get-value",
        "gemini_batch",
        "max_concurrent_polls",
        AIRFLOW__GEMINI_BATCH__MAX_CONCURRENT_POLLS="7",
    )
    assert overridden.strip().splitlines()[-1] == "7"


def test_max_concurrent_polls_is_read_from_the_gemini_batch_section(monkeypatch: pytest.MonkeyPatch) -> None:
    assert max_concurrent_polls() == DEFAULT_MAX_CONCURRENT_POLLS
    monkeypatch.setenv("AIRFLOW__GEMINI_BATCH__MAX_CONCURRENT_POLLS", "3")
    assert max_concurrent_polls() == 3


PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_gemini_batch"


def test_every_public_operator_sensor_trigger_and_hook_module_is_listed_and_imports() -> None:
    info = get_provider_info()
    listed = {
        module
        for kind in ("operators", "sensors", "triggers", "hooks")
        for entry in info[kind]
        for module in entry["python-modules"]
    }
    public = {
        f"airflow_provider_gemini_batch.{path.parent.name}.{path.stem}"
        for kind in ("operators", "sensors", "triggers", "hooks")
        for path in (PACKAGE / kind).glob("*.py")
        if not path.name.startswith("_")
    }

    assert listed == public
    for module in sorted(listed):
        importlib.import_module(module)
