"""Measured children: a fresh interpreter per measurement, its report, and its kernel-measured peak RSS.

Every benchmark measures the provider in a *fresh* child interpreter, so nothing the benchmark
itself allocated (generated files, the emulator, earlier runs) counts against it. A child reports
back one JSON line on stdout, marked with ``REPORT_MARKER``; ``run_child`` also reads the child's
peak RSS from the kernel when it is reaped.

Linux carries a process's peak RSS across ``exec`` into the program it starts, so a child's
``ru_maxrss`` is never below its parent's peak. That is why the parent of the measured children
never imports Airflow or the hook (``fixtures`` runs the hook in a worker process instead).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness.lifecycle import PYTHON, quiet_env

REPORT_MARKER = "BENCHMARK-REPORT "


def connection_json(base_url: str, api_key: str, **extra: Any) -> str:
    """A ``gemini`` connection to the emulator, as an ``AIRFLOW_CONN_*`` variable holds it."""
    connection: dict[str, Any] = {"conn_type": "gemini", "host": base_url, "password": api_key}
    if extra:
        connection["extra"] = extra
    return json.dumps(connection)


def airflow_child_env(
    airflow_home: Path, base_url: str, api_key: str, conn_id: str = "gemini_default"
) -> dict[str, str]:
    """Environment for a child that uses the hook: a throwaway AIRFLOW_HOME and the connection in an env var."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    return {
        **quiet_env(),
        "AIRFLOW_HOME": str(airflow_home),
        f"AIRFLOW_CONN_{conn_id.upper()}": connection_json(base_url, api_key),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


def python_child(script: Path, *args: str) -> list[str]:
    """The command that runs a benchmark module's measured child."""
    return [PYTHON, str(script), "--child", *args]


@dataclass(frozen=True)
class ChildRun:
    """How a measured child ended.

    :param peak_rss_bytes: the child's ``ru_maxrss`` as the kernel reported it when the child was reaped.
    :param report: the JSON object the child printed after ``REPORT_MARKER``, or ``None``.
    """

    returncode: int
    seconds: float
    peak_rss_bytes: int
    report: dict[str, Any] | None
    stdout: str
    stderr: str

    def check(self) -> dict[str, Any]:
        """The report, or an error showing the end of the child's stderr."""
        if self.returncode != 0 or self.report is None:
            raise RuntimeError(f"The child failed (exit {self.returncode}):\n{self.stderr[-4000:]}")
        return self.report


def run_child(command: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float) -> ChildRun:
    """Run ``command`` to completion and return its report and its kernel-measured peak RSS.

    The child is reaped with ``os.wait4`` (not ``Popen.wait``) because only that returns the
    resource usage of this one child; it is killed if it outlives ``timeout`` or the benchmark.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=out, stderr=err, text=True)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        finally:
            timer.cancel()
            if process.returncode is None:
                process.kill()
                process.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    report = None
    for line in stdout.splitlines():
        if line.startswith(REPORT_MARKER):
            report = json.loads(line[len(REPORT_MARKER) :])
    return ChildRun(
        returncode=process.returncode,
        seconds=seconds,
        peak_rss_bytes=usage.ru_maxrss * 1024,
        report=report,
        stdout=stdout,
        stderr=stderr,
    )


def report_to_parent(report: Mapping[str, Any]) -> None:
    """Print the child's result where ``run_child`` finds it."""
    print(REPORT_MARKER + json.dumps(dict(report)), flush=True)
