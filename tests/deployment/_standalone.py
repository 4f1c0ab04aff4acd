"""A real ``airflow standalone`` on loopback for deployment tests: start, inspect, steer, stop.

The deployment runs the scheduler (LocalExecutor), triggerer, dag-processor and api-server from a
fresh AIRFLOW_HOME and SQLite DB, with the DAGs of ``dags/`` and the connection ``gemini_default``
pointing at an emulator. Nothing listens beyond loopback: the api-server binds 127.0.0.1, and the
scheduler and triggerer run without the log servers they would otherwise bind to every interface
(see :func:`_write_airflow_shim`). Every wait here is bounded and fails with :meth:`Deployment.diagnostics`.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle

T = TypeVar("T")

DAGS_FOLDER = Path(__file__).parent / "dags"
# Start-up took 27 to 60 s on two cores (up to 75 s under load).
STARTUP_LIMIT_SECONDS = 150
STOP_GRACE_SECONDS = 15
POLL_SECONDS = 1.0


@dataclass
class Deployment:
    """A running ``airflow standalone`` as the tests see it."""

    process: subprocess.Popen[bytes]
    home: Path
    database: Path
    api_url: str
    api_port: int
    output: Path
    env: dict[str, str]
    dag_ids: tuple[str, ...]
    ready_seconds: float | None = None
    timeline: list[str] = field(default_factory=list)
    #: Components the tests started beside standalone (a replacement triggerer), stopped with it.
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: Where each of ``extra`` writes its output, by PID.
    extra_logs: dict[int, Path] = field(default_factory=dict)

    def processes(self) -> list[psutil.Process]:
        """Every live process of the deployment: its whole session, whatever group a task moved to."""
        members = _session_processes(self.process.pid)
        for process in self.extra:
            members += _session_processes(process.pid)
        return members

    def diagnostics(self, dag_id: str | None = None) -> str:
        """What CI needs to see on failure: state timeline, standalone output, task and trigger logs."""
        ready = "never ready" if self.ready_seconds is None else f"ready after {self.ready_seconds:.0f} s"
        parts = [f"--- {ready}; timeline ---"]
        parts += self.timeline[-40:]
        parts += [f"--- {self.output} (tail) ---", tail(self.output, 120)]
        for extra in self.extra:
            log = self.extra_logs[extra.pid]
            parts += [f"--- {log.name} (tail) ---", tail(log, 60)]
        for wanted in [dag_id] if dag_id else self.dag_ids:
            for log in sorted((self.home / "logs").glob(f"dag_id={wanted}/**/*.log")):
                parts += [f"--- {log.relative_to(self.home)} (tail) ---", tail(log, 40)]
        return "\n".join(parts)

    def api_headers(self) -> dict[str, str]:
        """Headers for the REST API: none where every caller is an admin (the default), else the admin's token.

        With ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False`` the simple auth manager writes the
        users' passwords to ``AIRFLOW_HOME`` when the api-server starts; the admin's gets a token.
        """
        if self.env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS") == "True":
            return {}
        response = httpx.post(
            f"{self.api_url}/auth/token",
            json={"username": "admin", "password": self.password("admin")},
            timeout=10,
        )
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def password(self, username: str) -> str:
        """A simple auth manager user's generated password."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        return str(passwords[username])

    def assert_alive(self) -> None:
        """Fail at once when standalone itself has exited."""
        if self.process.poll() is not None:
            pytest.fail(f"airflow standalone exited with code {self.process.returncode}.\n{self.diagnostics()}")

    def start_component(
        self, *args: str, log_name: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``airflow <args>`` with the deployment's environment (or ``env``), through the shim, stopped with it.

        Its output goes to ``log_name`` beside standalone's (appended to), else to ``extra-<pid>.log``.
        """
        log_path = self.output.with_name(log_name or "extra-pending.log")
        with log_path.open("ab") as sink:
            process = subprocess.Popen(
                ["airflow", *args],
                env=env or self.env,
                cwd=self.output.parent,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if log_name is None:
            log_path = log_path.rename(self.output.with_name(f"extra-{process.pid}.log"))
        self.extra.append(process)
        self.extra_logs[process.pid] = log_path
        return process


def airflow_env(
    directory: Path,
    emulator: EmulatorHandle,
    api_port: int,
    dags_folder: Path,
    more: dict[str, str],
    *,
    connection_extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Set up ``directory`` for a test deployment; return the environment its Airflow processes run with.

    Makes ``AIRFLOW_HOME`` (``directory / "airflow-home"``) and the ``airflow`` shim in
    ``directory / "bin"``. The metadata DB is SQLite in ``directory``; the api-server listens on
    127.0.0.1:``api_port`` and serves the execution API; ``gemini_default`` points at ``emulator``
    (with ``connection_extra``). ``more`` is added last.
    """
    home, bin_dir = directory / "airflow-home", directory / "bin"
    home.mkdir()
    bin_dir.mkdir()
    _write_airflow_shim(bin_dir)
    connection: dict[str, Any] = {"conn_type": "gemini", "host": emulator.base_url, "password": emulator.api_key}
    if connection_extra:
        connection["extra"] = connection_extra
    # Nothing from the test session's own Airflow set-up (unit test mode, its home) may leak in.
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{directory / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW_CONN_GEMINI_DEFAULT": json.dumps(connection),
            **more,
        }
    )
    return env


@contextlib.contextmanager
def run_standalone(
    directory: Path,
    emulator: EmulatorHandle,
    dag_ids: tuple[str, ...],
    extra_env: dict[str, str] | None = None,
    *,
    dags_folder: Path = DAGS_FOLDER,
    connection_extra: dict[str, Any] | None = None,
) -> Iterator[Deployment]:
    """Start ``airflow standalone`` against ``emulator``; yield once it serves ``dag_ids``; stop it all after.

    :param extra_env: more environment for every component (``AIRFLOW__...`` settings, ``AIRFLOW_VAR_...``).
    :param dags_folder: the DAGs to serve (default ``dags/``, whose ``.airflowignore`` keeps sub-folders
        that belong to one test out of the others).
    :param connection_extra: the ``extra`` of the connection ``gemini_default`` (a ``webhook_secret``, say).
    """
    api_port, worker_log_port, trigger_log_port = _free_ports(3)
    more = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
        **(extra_env or {}),
    }
    env = airflow_env(directory, emulator, api_port, dags_folder, more, connection_extra=connection_extra)
    home, database, api_url = directory / "airflow-home", directory / "airflow.db", f"http://127.0.0.1:{api_port}"
    output = directory / "standalone.log"
    starting = time.monotonic()
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deployment = Deployment(process, home, database, api_url, api_port, output, env, dag_ids)
    try:
        _wait_until_ready(deployment)
        deployment.ready_seconds = time.monotonic() - starting
        yield deployment
    finally:
        _stop(deployment)


def wait_for(
    deployment: Deployment, check: Callable[[], T | None], limit: float, what: str, dag_id: str | None = None
) -> T:
    """Call ``check`` every second until it returns something other than ``None``; fail after ``limit`` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        deployment.assert_alive()
        result = check()
        if result is not None:
            return result
        time.sleep(POLL_SECONDS)
    pytest.fail(f"Waited {limit:.0f} s for {what}.\n{deployment.diagnostics(dag_id)}")


def read_states(database: Path, dag_id: str) -> tuple[dict[str, str], dict[str, str]] | None:
    """The submit task's state and the run's state, by run id; ``None`` when the DB is busy or not made yet."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=2)) as db:
            tasks = db.execute(
                "SELECT run_id, state FROM task_instance WHERE dag_id = ? AND task_id = 'submit'", (dag_id,)
            ).fetchall()
            runs = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchall()
    except sqlite3.OperationalError:
        return None
    return {run: state or "none" for run, state in sorted(tasks)}, dict(sorted(runs))


def query(database: Path, sql: str, parameters: tuple[Any, ...] = ()) -> list[sqlite3.Row] | None:
    """Rows of a read-only query of the deployment's DB; ``None`` when the DB is busy or not made yet."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=2)) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, parameters).fetchall()
    except sqlite3.OperationalError:
        return None


@dataclass(frozen=True)
class AssetEventRow:
    """An asset event as the DB holds it, with the runs that consumed it."""

    id: int
    extra: dict[str, Any]
    timestamp: str
    run_ids: tuple[str, ...]


def asset_events(database: Path, asset_name: str) -> list[AssetEventRow] | None:
    """Every event of the asset named ``asset_name``, oldest first, each with the run ids that consumed it.

    ``None`` when the DB is busy. The tables (``asset``, ``asset_event``, ``dagrun_asset_event``) are
    the same on Airflow 3.0 and 3.3.
    """
    rows = query(
        database,
        "SELECT e.id, e.extra, e.timestamp, r.run_id FROM asset_event e JOIN asset a ON a.id = e.asset_id"
        " LEFT JOIN dagrun_asset_event c ON c.event_id = e.id LEFT JOIN dag_run r ON r.id = c.dag_run_id"
        " WHERE a.name = ? ORDER BY e.id",
        (asset_name,),
    )
    if rows is None:
        return None
    consumers: dict[int, list[str]] = {}
    first_rows: dict[int, sqlite3.Row] = {}
    for row in rows:
        first_rows.setdefault(row["id"], row)
        consumers.setdefault(row["id"], []).extend([row["run_id"]] if row["run_id"] else [])
    return [
        AssetEventRow(event_id, json.loads(row["extra"] or "{}"), str(row["timestamp"]), tuple(consumers[event_id]))
        for event_id, row in first_rows.items()
    ]


def dag_runs(database: Path, dag_id: str) -> dict[str, sqlite3.Row] | None:
    """The DAG's runs by run id (``state``, ``run_type``, ``start_date``, ``end_date``, ...); ``None`` when busy."""
    rows = query(database, "SELECT * FROM dag_run WHERE dag_id = ? ORDER BY id", (dag_id,))
    return None if rows is None else {row["run_id"]: row for row in rows}


def readable_logs(deployment: Deployment) -> list[Path]:
    """Every log file the deployment wrote that a user could read: standalone's output, components', tasks'."""
    found = [deployment.output, *deployment.extra_logs.values()]
    found += [path for path in (deployment.home / "logs").rglob("*") if path.is_file()]
    return [path for path in found if path.is_file()]


def listeners(processes: list[psutil.Process]) -> tuple[list[str], set[int]]:
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
                    stray.append(f"{title(process)} (pid {process.pid}) on {address}:{connection.laddr.port}")
    return stray, loopback_ports


def executor_workers(processes: list[psutil.Process], group_id: int) -> list[str]:
    """Titles of the LocalExecutor's worker processes (a task it forks moves to a group of its own)."""
    workers = []
    for process in processes:
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == group_id and "worker -- LocalExecutor" in title(process):
                workers.append(title(process))
    return workers


def title(process: psutil.Process) -> str:
    """The process's command line as ``ps`` shows it (a process title, once set)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return "?"


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file, or why it could not be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"


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
    """Wait until the api-server answers, the three other components heartbeat and every DAG is active."""
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    waiting_for = "the api-server"
    with httpx.Client(base_url=deployment.api_url, timeout=5) as api:
        while time.monotonic() < deadline:
            deployment.assert_alive()
            with contextlib.suppress(httpx.TransportError, httpx.HTTPStatusError, ValueError, OSError, KeyError):
                health = api.get("/api/v2/monitor/health")
                unhealthy = [name for name, part in health.json().items() if part.get("status") != "healthy"]
                waiting_for = f"healthy components (not yet: {unhealthy})"
                if health.status_code == 200 and not unhealthy:
                    headers = deployment.api_headers()
                    pending = [dag_id for dag_id in deployment.dag_ids if not _dag_active(api, dag_id, headers)]
                    waiting_for = f"the DAGs {pending} to be parsed and unpaused"
                    if not pending:
                        return
            time.sleep(POLL_SECONDS)
    pytest.fail(
        f"airflow standalone was not ready within {STARTUP_LIMIT_SECONDS} s: waiting for {waiting_for}.\n"
        f"{deployment.diagnostics()}"
    )


def _dag_active(api: httpx.Client, dag_id: str, headers: dict[str, str]) -> bool:
    dag = api.get(f"/api/v2/dags/{dag_id}", headers=headers)
    return dag.status_code == 200 and not dag.json()["is_paused"]


def _session_processes(session_id: int) -> list[psutil.Process]:
    # The task supervisor moves each task into a process group of its own, but not out of the session.
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(process.pid) == session_id and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
    return members


def _stop(deployment: Deployment) -> None:
    """Stop every process of the deployment: SIGTERM, a grace period, then SIGKILL; fail if any survive."""
    leaders = [deployment.process, *deployment.extra]
    for leader in leaders:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGTERM)
    members = deployment.processes()
    for process in members:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(members, timeout=STOP_GRACE_SECONDS)
    for leader in leaders:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
    for process in [*alive, *deployment.processes()]:
        with contextlib.suppress(psutil.Error):
            process.kill()
    _, survivors = psutil.wait_procs(deployment.processes(), timeout=5)
    for leader in leaders:
        with contextlib.suppress(subprocess.TimeoutExpired):
            leader.wait(5)
    assert not survivors, f"Processes of airflow standalone survived SIGKILL: {[title(p) for p in survivors]}"
