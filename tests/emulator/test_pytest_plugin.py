"""The pytest fixtures users get with the provider, and what installing the plugin costs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.emulator.pytest_plugin import EMULATOR_API_KEY

from ._support import create, inline_config

#: Written into a foreign project: at the end of its session, which server modules got imported.
_REPORTING_CONFTEST = """
import json
import sys


def pytest_sessionfinish(session):
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in {"uvicorn", "starlette"})
    plugin = session.config.pluginmanager.has_plugin("gemini_batch_emulator")
    with open("report.json", "w") as report:
        json.dump({"plugin_loaded": plugin, "server_modules": loaded}, report)
"""


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


def test_importing_the_provider_imports_no_web_server() -> None:
    # Airflow 3.0's own `import airflow` imports starlette (task runner -> comms -> fastapi); 3.3's
    # does not. What is checked is that the provider adds nothing to what Airflow already imports.
    code = textwrap.dedent(
        """
        import json, sys
        def server_modules():
            return sorted(m for m in sys.modules if m.split(".")[0] in {"uvicorn", "starlette"})
        import airflow
        before = server_modules()
        import airflow_provider_gemini_batch.hooks
        print(json.dumps({"airflow": before, "provider": server_modules()}))
        """
    )

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])  # the last line: Airflow may log to stdout before it
    assert loaded["provider"] == loaded["airflow"]
    assert not any(name.startswith("uvicorn") for name in loaded["provider"])


def run_foreign_pytest(project: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    """Run pytest in ``project``, a folder outside this repository with only the reporting conftest."""
    (project / "conftest.py").write_text(_REPORTING_CONFTEST)
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)
    report: dict[str, object] = json.loads((project / "report.json").read_text())
    return result, report


def test_an_unrelated_pytest_session_imports_no_web_server(tmp_path: Path) -> None:
    (tmp_path / "test_unrelated.py").write_text("def test_nothing():\n    pass\n")

    result, report = run_foreign_pytest(tmp_path, "--co")

    assert result.returncode == 0, result.stdout + result.stderr
    assert report == {"plugin_loaded": True, "server_modules": []}


def test_a_foreign_project_gets_the_fixtures_without_a_conftest(tmp_path: Path) -> None:
    (tmp_path / "test_uses_the_emulator.py").write_text(
        textwrap.dedent(
            """
            def test_the_emulator_answers(gemini_connection):
                assert gemini_connection.control.created_count() == 0
            """
        )
    )

    result, report = run_foreign_pytest(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert report["plugin_loaded"] is True
    assert "uvicorn" in report["server_modules"]  # imported when the fixture started the server
