"""A batch wait holds no worker slot: two deferred waits side by side under ``airflow standalone``.

The deployment is real: ``airflow standalone`` (scheduler with the LocalExecutor, triggerer,
dag-processor, api-server) on loopback, a fresh AIRFLOW_HOME and SQLite DB, ``core.parallelism = 1``
so the LocalExecutor forks exactly one worker process. Two runs of ``dags/gemini_standalone_deferral.py``
are triggered together; each submits a job that the emulator keeps RUNNING for 60 s. Both submit
tasks are seen ``deferred`` at the same instant, which one worker slot only allows if a waiting
batch does not hold it, and then both runs succeed. It takes about two minutes.

Nothing listens beyond loopback: the api-server binds 127.0.0.1, and the scheduler and triggerer run
without the log servers they would otherwise bind to every interface (see ``_write_airflow_shim``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle

pytestmark = pytest.mark.slow

DAG_ID = "gemini_standalone_deferral"
RUN_IDS = ("run_a", "run_b")
DAGS_FOLDER = Path(__file__).parent / "dags"
JOB_RUNNING_SECONDS = 60
# Start-up took 27 to 60 s on two cores (up to 75 s under load); the runs take 70 to 85 s (60 s
# RUNNING, 5 s polls, task starts). With the stop below, the worst case stays under five minutes.
STARTUP_LIMIT_SECONDS = 150
RUNS_LIMIT_SECONDS = 130
STOP_GRACE_SECONDS = 15
POLL_SECONDS = 1.0


@dataclass
class Deployment:
    """A running ``airflow standalone`` as the test sees it."""

    process: subprocess.Popen[bytes]
    home: Path
    database: Path
    api_url: str
    api_port: int
    output: Path
    ready_seconds: float | None = None
    timeline: list[str] = field(default_factory=list)

    def processes(self) -> list[psutil.Process]:
        """Every live process of the deployment: its whole session, whatever group a task moved to."""
        return _session_processes(self.process.pid)

    def diagnostics(self) -> str:
        """What CI needs to see on failure: state timeline, standalone output, task logs."""
        ready = "never ready" if self.ready_seconds is None else f"ready after {self.ready_seconds:.0f} s"
        parts = [f"--- {ready}; states, seconds after triggering ---"]
        parts += self.timeline[-40:]
        parts += [f"--- {self.output} (tail) ---", _tail(self.output, 120)]
        for log in sorted((self.home / "logs").glob(f"dag_id={DAG_ID}/**/*.log")):
            parts += [f"--- {log.relative_to(self.home)} (tail) ---", _tail(log, 40)]
        return "\n".join(parts)


def test_two_waiting_batches_share_one_worker_slot(standalone: Deployment, gemini_emulator: EmulatorHandle) -> None:
    with httpx.Client(base_url=standalone.api_url, timeout=30) as api:
        for run_id in RUN_IDS:
            body = {"dag_run_id": run_id, "logical_date": None}
            response = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json=body)
            assert response.status_code == 200, f"Triggering {run_id}: {response.status_code} {response.text[:300]}"

    started = time.monotonic()
    both_deferred_at: float | None = None
    most_running = 0
    run_states: dict[str, str] = {}
    stray_listeners: list[str] = []
    loopback_ports: set[int] = set()
    worker_titles: list[str] = []
    previous: tuple[object, ...] = ()
    while time.monotonic() - started < RUNS_LIMIT_SECONDS:
        _assert_alive(standalone)
        sample = _read_states(standalone.database)
        if sample is not None:
            task_states, run_states = sample
            if (task_states, run_states) != previous:
                previous = (task_states, run_states)
                standalone.timeline.append(f"{time.monotonic() - started:6.1f}  tasks {task_states}  runs {run_states}")
            most_running = max(most_running, list(task_states.values()).count("running"))
            if both_deferred_at is None and all(task_states.get(run_id) == "deferred" for run_id in RUN_IDS):
                both_deferred_at = time.monotonic() - started
                # Every component and the worker have started by now: the best moment to look around.
                processes = standalone.processes()
                stray_listeners, loopback_ports = _listeners(processes)
                worker_titles = _executor_workers(processes, standalone.process.pid)
            if len(run_states) == len(RUN_IDS) and all(state in ("success", "failed") for state in run_states.values()):
                break
        time.sleep(POLL_SECONDS)
    else:
        pytest.fail(f"The runs did not finish within {RUNS_LIMIT_SECONDS} s.\n{standalone.diagnostics()}")

    assert both_deferred_at is not None, (
        f"The two submit tasks were never deferred at the same time.\n{standalone.diagnostics()}"
    )
    assert run_states == dict.fromkeys(RUN_IDS, "success"), f"Runs ended {run_states}.\n{standalone.diagnostics()}"
    # One slot is real: one worker process, and never two submit tasks running at once. (The scheduler
    # may mark both queued, since the LocalExecutor never fills its running set, apache/airflow#71914;
    # the single worker still runs them one after the other.)
    assert "LocalExecutor(parallelism=1)" in standalone.output.read_text(errors="replace"), standalone.diagnostics()
    assert len(worker_titles) == 1, f"Expected one LocalExecutor worker, found {worker_titles}"
    assert most_running <= 1, f"Two tasks ran at once.\n{standalone.diagnostics()}"
    assert not stray_listeners, f"Listening beyond loopback: {stray_listeners}"
    assert standalone.api_port in loopback_ports, f"The api-server was not seen listening on {standalone.api_url}"

    # Shown with -rP: how long each phase took on this machine.
    print(
        f"standalone ready after {standalone.ready_seconds or 0:.0f} s; both deferred {both_deferred_at:.0f} s "
        f"after triggering; both runs done after {time.monotonic() - started:.0f} s"
    )
    # Exactly one job per run: each display name is the rendered "{{ run_id }}" (plus the submit-once key).
    batches = gemini_emulator.control.batches()
    display_names = sorted(batch["displayName"] for batch in batches)
    assert len(display_names) == len(RUN_IDS), batches
    assert all(name.startswith(run_id) for name, run_id in zip(display_names, RUN_IDS, strict=True)), batches
    assert {batch["state"] for batch in batches} == {"BATCH_STATE_SUCCEEDED"}, batches


@pytest.fixture
def standalone(tmp_path: Path, gemini_emulator: EmulatorHandle) -> Iterator[Deployment]:
    """Start ``airflow standalone`` against the emulator; wait until it serves the DAG; stop it all after."""
    gemini_emulator.control.configure(pending_seconds=0, running_seconds=JOB_RUNNING_SECONDS)
    home = tmp_path / "airflow-home"
    bin_dir = tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    _write_airflow_shim(bin_dir)
    api_port, worker_log_port, trigger_log_port = _free_ports(3)
    api_url = f"http://127.0.0.1:{api_port}"
    database = tmp_path / "airflow.db"
    connection = {"conn_type": "gemini", "host": gemini_emulator.base_url, "password": gemini_emulator.api_key}
    # Nothing from the test session's own Airflow set-up (unit test mode, its home) may leak in.
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "1",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW_CONN_GEMINI_DEFAULT": json.dumps(connection),
        }
    )
    output = tmp_path / "standalone.log"
    starting = time.monotonic()
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deployment = Deployment(process, home, database, api_url, api_port, output)
    try:
        _wait_until_ready(deployment)
        deployment.ready_seconds = time.monotonic() - starting
        yield deployment
    finally:
        _stop(deployment)


def _write_airflow_shim(bin_dir: Path) -> None:
    """Put an ``airflow`` first on PATH that starts the scheduler and triggerer without log servers.

    ``airflow standalone`` runs its components as ``airflow <component>`` from PATH. The scheduler
    and triggerer would each start a log server bound to every interface (``host=""`` is hard-coded
    in ``airflow.utils.serve_logs.core``); on one machine the api-server reads task logs from disk.
    """
    shim = bin_dir / "airflow"
    shim.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f'  scheduler|triggerer) exec "{sys.executable}" -m airflow "$@" --skip-serve-logs ;;\n'
        "esac\n"
        f'exec "{sys.executable}" -m airflow "$@"\n'
    )
    shim.chmod(0o755)


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _wait_until_ready(deployment: Deployment) -> None:
    """Wait until the api-server answers, the three other components heartbeat and the DAG is active."""
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    waiting_for = "the api-server"
    with httpx.Client(base_url=deployment.api_url, timeout=5) as api:
        while time.monotonic() < deadline:
            _assert_alive(deployment)
            with contextlib.suppress(httpx.TransportError, ValueError):
                health = api.get("/api/v2/monitor/health")
                unhealthy = [name for name, part in health.json().items() if part.get("status") != "healthy"]
                waiting_for = f"healthy components (not yet: {unhealthy})"
                if health.status_code == 200 and not unhealthy:
                    waiting_for = f"the DAG {DAG_ID} to be parsed and unpaused"
                    dag = api.get(f"/api/v2/dags/{DAG_ID}")
                    if dag.status_code == 200 and not dag.json()["is_paused"]:
                        return
            time.sleep(POLL_SECONDS)
    pytest.fail(
        f"airflow standalone was not ready within {STARTUP_LIMIT_SECONDS} s: waiting for {waiting_for}.\n"
        f"{deployment.diagnostics()}"
    )


def _assert_alive(deployment: Deployment) -> None:
    if deployment.process.poll() is not None:
        pytest.fail(f"airflow standalone exited with code {deployment.process.returncode}.\n{deployment.diagnostics()}")


def _read_states(database: Path) -> tuple[dict[str, str], dict[str, str]] | None:
    """The submit task's state and the run's state, by run id; ``None`` when the DB is busy or not made yet."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=2)) as db:
            tasks = db.execute(
                "SELECT run_id, state FROM task_instance WHERE dag_id = ? AND task_id = 'submit'", (DAG_ID,)
            ).fetchall()
            runs = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (DAG_ID,)).fetchall()
    except sqlite3.OperationalError:
        return None
    return dict(sorted(tasks)), dict(sorted(runs))


def _session_processes(session_id: int) -> list[psutil.Process]:
    # The task supervisor moves each task into a process group of its own, but not out of the session.
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(process.pid) == session_id and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
    return members


def _listeners(processes: list[psutil.Process]) -> tuple[list[str], set[int]]:
    """Listening sockets of these processes: those beyond loopback (described), and loopback ports."""
    stray: list[str] = []
    loopback_ports: set[int] = set()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            for connection in process.net_connections(kind="inet"):
                if connection.status != psutil.CONN_LISTEN:
                    continue
                address = ipaddress.ip_address(connection.laddr.ip)
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                    address = address.ipv4_mapped
                if address.is_loopback:
                    loopback_ports.add(connection.laddr.port)
                else:
                    stray.append(f"{_title(process)} (pid {process.pid}) on {address}:{connection.laddr.port}")
    return stray, loopback_ports


def _executor_workers(processes: list[psutil.Process], group_id: int) -> list[str]:
    """Titles of the LocalExecutor's worker processes (a task it forks moves to a group of its own)."""
    workers = []
    for process in processes:
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == group_id and "worker -- LocalExecutor" in _title(process):
                workers.append(_title(process))
    return workers


def _title(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return "?"


def _stop(deployment: Deployment) -> None:
    """Stop every process of the deployment: SIGTERM, a grace period, then SIGKILL; fail if any survive."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(deployment.process.pid, signal.SIGTERM)
    members = deployment.processes()
    for process in members:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(members, timeout=STOP_GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(deployment.process.pid, signal.SIGKILL)
    for process in [*alive, *deployment.processes()]:
        with contextlib.suppress(psutil.Error):
            process.kill()
    _, survivors = psutil.wait_procs(deployment.processes(), timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        deployment.process.wait(5)
    assert not survivors, f"Processes of airflow standalone survived SIGKILL: {[_title(p) for p in survivors]}"


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"
