"""The deployment harness itself: what a failing deployment test shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.deployment._standalone import Deployment


def _deployment(tmp_path: Path) -> Deployment:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "airflow"
    fake.write_text(f"#!{sys.executable}\nimport sys\nprint('component says', *sys.argv[1:])\n")
    fake.chmod(0o755)
    output = tmp_path / "standalone.log"
    output.write_text("standalone says hello\n")
    main = subprocess.Popen([sys.executable, "-c", "pass"])
    main.wait()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return Deployment(main, tmp_path / "home", tmp_path / "airflow.db", "http://127.0.0.1:9", 9, output, env, ())


def test_diagnostics_show_each_started_component_from_its_own_log(tmp_path: Path) -> None:
    deployment = _deployment(tmp_path)
    named = deployment.start_component("scheduler", log_name="scheduler.log")
    unnamed = deployment.start_component("triggerer")
    named.wait(30)
    unnamed.wait(30)
    text = deployment.diagnostics()
    assert "--- scheduler.log (tail) ---\ncomponent says scheduler" in text
    assert f"--- extra-{unnamed.pid}.log (tail) ---\ncomponent says triggerer" in text
    assert "unreadable" not in text
