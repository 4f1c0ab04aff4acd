"""A real CeleryExecutor deployment on loopback: Redis, api-server, scheduler, dag-processor, two
triggerers and two Celery workers, each its own process, started and stopped by PID.

Every component gets a name (``worker-a``, ``triggerer-b``, ...) that Airflow records as its
hostname, through ``[core] hostname_callable``: a task instance's ``hostname`` then says which
worker ran it, and a triggerer's ``job.hostname`` which triggerer served a trigger, although all of
them run on this one machine. Redis binds 127.0.0.1 on a free port, keeps nothing on disk, and is
stopped by its PID; the Airflow components reuse ``_standalone.py``'s shim (no log servers), its
readiness check and its stop.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from tests.deployment._standalone import (
    Deployment,
    _free_ports,
    _stop,
    _wait_until_ready,
    airflow_env,
    tail,
)

MIGRATE_LIMIT_SECONDS = 180
REDIS_START_LIMIT_SECONDS = 20

HOSTNAME_MODULE = '''"""Name this Airflow component as the scale-out test asked (tests/deployment/_celery.py)."""
import os


def hostname():
    return os.environ["SCALEOUT_COMPONENT"]
'''


@dataclass
class CeleryDeployment:
    """The running deployment: the Airflow side as ``Deployment``, plus each component by name."""

    airflow: Deployment
    components: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``airflow <args>`` as component ``name`` (its hostname in the DB), logging to ``<name>.log``."""
        env = {**self.airflow.env, "SCALEOUT_COMPONENT": name}
        process = self.airflow.start_component(*args, log_name=f"{name}.log", env=env)
        self.components[name] = process
        return process

    def kill(self, name: str) -> None:
        """SIGKILL component ``name`` and every process of its session (a worker's task processes too)."""
        process = self.components[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        self.airflow.timeline.append(f"{time.strftime('%H:%M:%S')} killed {name} (pid {process.pid})")

    def worker_idle(self, name: str) -> bool:
        """Whether Celery worker ``name`` has finished every Celery task it received (its log says so)."""
        text = tail(self.airflow.output.with_name(f"{name}.log"), 100_000)
        received = len(re.findall(r"Task execute_workload\[[^\]]+\] received", text))
        ended = len(re.findall(r"Task execute_workload\[[^\]]+\] (?:succeeded|failed|raised|retry)", text))
        return received > 0 and received == ended

    def diagnostics(self) -> str:
        """The deployment's diagnostics: the api-server's output and every component's (``<name>.log``)."""
        return self.airflow.diagnostics()


@contextlib.contextmanager
def run_redis(directory: Path) -> Iterator[str]:
    """Start ``redis-server`` on 127.0.0.1 and a free port, no persistence; yield its URL; stop it by PID."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/system-deps.sh (make pytest runs it).")
    (port,) = _free_ports(1)
    log = directory / "redis.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--save", "",
                "--appendonly", "no",
                "--protected-mode", "yes",
                "--dir", str(directory),
            ],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"redis://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + REDIS_START_LIMIT_SECONDS
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if redis.Redis.from_url(url, socket_timeout=1).ping():
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on {url}:\n{tail(log, 30)}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def run_celery_deployment(
    directory: Path,
    emulator: EmulatorHandle,
    dags_folder: Path,
    dag_ids: tuple[str, ...],
    extra_env: dict[str, str],
) -> Iterator[CeleryDeployment]:
    """Start Redis and the Airflow components against ``emulator``; yield once ``dag_ids`` are served; stop all."""
    modules = directory / "modules"
    modules.mkdir()
    (modules / "scaleout_hostname.py").write_text(HOSTNAME_MODULE)
    (api_port,) = _free_ports(1)
    home, database, api_url = directory / "airflow-home", directory / "airflow.db", f"http://127.0.0.1:{api_port}"
    with run_redis(directory) as redis_url:
        more = {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH", "")])),
            "SCALEOUT_COMPONENT": "cli",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scaleout_hostname.hostname",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"{redis_url}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"{redis_url}/1",
            **extra_env,
        }
        env = airflow_env(directory, emulator, api_port, dags_folder, more)
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            cwd=directory,
            capture_output=True,
            timeout=MIGRATE_LIMIT_SECONDS,
            check=False,
        )
        if migrate.returncode != 0:
            pytest.fail(f"airflow db migrate failed:\n{migrate.stdout[-3000:]!r}\n{migrate.stderr[-3000:]!r}")
        output = directory / "api-server.log"
        with output.open("wb") as sink:
            api_server = subprocess.Popen(
                ["airflow", "api-server"],
                env={**env, "SCALEOUT_COMPONENT": "api-server"},
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deployment = CeleryDeployment(Deployment(api_server, home, database, api_url, api_port, output, env, dag_ids))
        try:
            deployment.start("scheduler", "scheduler")
            deployment.start("dag-processor", "dag-processor")
            for name in ("triggerer-a", "triggerer-b"):
                deployment.start(name, "triggerer")
            for name in ("worker-a", "worker-b"):
                deployment.start(name, "celery", "worker", "--skip-serve-logs", "--celery-hostname", f"{name}@%h")
            _wait_until_ready(deployment.airflow)
            yield deployment
        finally:
            _stop(deployment.airflow)
