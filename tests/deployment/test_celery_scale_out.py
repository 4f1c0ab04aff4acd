"""Scale-out on Airflow's distributed engine: the sharded example DAG on CeleryExecutor with two workers
and two triggerers (``_celery.py``), against the emulator.

One deployment serves two runs of ``example_dags/gemini_batch_sharded.py``, copied as it is, each
splitting 12 requests into 6 shards:

- an undisturbed run: every shard's job is created exactly once, mapped tasks ran on both workers,
  the waits were served by both triggerers, and the merged results hold every key once;
- a run in which one worker and one triggerer are SIGKILLed while the shards wait: the surviving
  triggerer adopts the orphaned waits, the surviving worker resumes the tasks, the run completes,
  and still no shard has a second job.

Neither the API key nor anything derived from it reaches a log. The module takes about three minutes.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.version import Version

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from tests.deployment._celery import CeleryDeployment, run_celery_deployment
from tests.deployment._standalone import listeners, query, readable_logs

pytestmark = pytest.mark.slow

DAG_ID = "gemini_batch_sharded"
EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags"
SHARDS = 6  # 12 tickets, 2 requests per shard (the example's default).
TICKETS = 12
# Each triggerer takes at most this many triggers, so six waits at once must spread over both.
TRIGGERER_CAPACITY = 3
# A triggerer adopts the triggers of one whose heartbeat is older than this.
TRIGGERER_HEALTH_CHECK_SECONDS = 10
RUN_LIMIT_SECONDS = 180
AIRFLOW_VERSION = Version(importlib.metadata.version("apache-airflow"))
# Airflow 3.0's CeleryExecutor (celery provider 3.12) tracks a task by dag, task, run, try and map
# index until its Celery task reports a result. A worker SIGKILLed while a deferred task's Celery task
# is still finishing (the task has deferred; its process is wrapping up) never reports one: the key
# stays "running", and the resumed task, same try, is never queued ("queued but still running", then
# "could not queue task"). Airflow 3.3 with celery provider 3.26 resumes it on the other worker. So on
# 3.0 the worker is killed only once its Celery tasks have ended, while the shards still wait deferred.
CELERY_EXECUTOR_FORGETS_KILLED_WORKERS_TASKS = Version("3.1") <= AIRFLOW_VERSION
SAMPLE_SECONDS = 0.5


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, gemini_emulator_server: EmulatorHandle
) -> Iterator[CeleryDeployment]:
    directory = tmp_path_factory.mktemp("celery")
    dags = directory / "dags"
    (dags / "data").mkdir(parents=True)
    shutil.copy(EXAMPLE / f"{DAG_ID}.py", dags)
    shutil.copy(EXAMPLE / "data" / "support_tickets.csv", dags / "data")
    settings = {
        "GEMINI_POLL_INTERVAL": "1",
        "GEMINI_RESULTS_DIR": str(directory / "results"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__TRIGGERER__CAPACITY": str(TRIGGERER_CAPACITY),
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_SECONDS),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
    }
    with run_celery_deployment(directory, gemini_emulator_server, dags, (DAG_ID,), settings) as running:
        yield running


@pytest.fixture
def api(deployment: CeleryDeployment) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployment.airflow.api_url, timeout=30) as client:
        yield client


class Observed:
    """What the DB showed while a run went on: who served each trigger, who ran each task."""

    def __init__(self) -> None:
        self.trigger_hosts: dict[int, set[str]] = {}

    def sample(self, deployment: CeleryDeployment) -> None:
        rows = query(
            deployment.airflow.database,
            "SELECT t.id AS trigger_id, j.hostname AS host FROM trigger t JOIN job j ON j.id = t.triggerer_id"
            " WHERE t.classpath LIKE '%GeminiBatchTrigger'",
        )
        for row in rows or []:
            self.trigger_hosts.setdefault(row["trigger_id"], set()).add(row["host"])

    @property
    def triggerers(self) -> set[str]:
        return {host for hosts in self.trigger_hosts.values() for host in hosts}


def _trigger(api: httpx.Client) -> str:
    run_id = f"scale_out_{time.time_ns()}"
    response = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
    assert response.status_code == 200, f"Triggering: {response.status_code} {response.text[:300]}"
    return run_id


def _run_state(deployment: CeleryDeployment, run_id: str) -> str | None:
    rows = query(deployment.airflow.database, "SELECT state FROM dag_run WHERE run_id = ?", (run_id,))
    return str(rows[0]["state"]) if rows else None


def _submit_tasks(deployment: CeleryDeployment, run_id: str) -> list[Any]:
    rows = query(
        deployment.airflow.database,
        "SELECT map_index, state, hostname FROM task_instance WHERE run_id = ? AND task_id = 'submit_shard'",
        (run_id,),
    )
    return list(rows or [])


def _watch(deployment: CeleryDeployment, run_id: str, until: Any, what: str) -> Observed:
    """Sample the DB until ``until(observed)`` is true; fail after ``RUN_LIMIT_SECONDS``."""
    observed = Observed()
    deadline = time.monotonic() + RUN_LIMIT_SECONDS
    while time.monotonic() < deadline:
        deployment.airflow.assert_alive()
        observed.sample(deployment)
        if until(observed):
            return observed
        time.sleep(SAMPLE_SECONDS)
    pytest.fail(f"Waited {RUN_LIMIT_SECONDS} s for {what} of {run_id}.\n{deployment.diagnostics()}")


def _jobs(emulator: EmulatorHandle, run_id: str) -> list[dict[str, Any]]:
    prefix = f"first-replies-{run_id} "
    return [job for job in emulator.control.batches() if (job["displayName"] or "").startswith(prefix)]


def _creates(emulator: EmulatorHandle) -> int:
    return sum(
        1
        for request in emulator.control.requests()
        if request["method"] == "POST" and request["path"].endswith(":batchGenerateContent")
    )


def _merged_keys(deployment: CeleryDeployment, run_id: str) -> tuple[dict[str, Any], list[str]]:
    folder = Path(deployment.airflow.env["GEMINI_RESULTS_DIR"]) / "sharded" / run_id.replace(":", "_") / "results"
    manifest = json.loads((folder / "manifest.json").read_text())
    keys = [
        json.loads(line)["key"]
        for shard in manifest["shards"]
        for line in Path(shard["path"]).read_bytes().splitlines()
    ]
    return manifest, keys


def _assert_complete(deployment: CeleryDeployment, emulator: EmulatorHandle, run_id: str) -> None:
    state = _run_state(deployment, run_id)
    assert state == "success", f"The run ended {state}.\n{deployment.diagnostics()}"
    jobs = _jobs(emulator, run_id)
    assert len(jobs) == SHARDS, f"Expected one job per shard: {jobs}"
    assert len({job["displayName"] for job in jobs}) == SHARDS, "each shard has its own durable key"
    manifest, keys = _merged_keys(deployment, run_id)
    assert (manifest["shard_count"], manifest["missing_count"], manifest["complete"]) == (SHARDS, 0, True)
    assert len(keys) == TICKETS
    assert len(set(keys)) == TICKETS, "every key once"


def test_shards_spread_over_both_workers_and_both_triggerers_and_each_job_is_created_once(
    deployment: CeleryDeployment, gemini_emulator_server: EmulatorHandle, api: httpx.Client
) -> None:
    emulator = gemini_emulator_server
    emulator.control.configure(pending_seconds=0, running_seconds=25)
    creates_before = _creates(emulator)

    run_id = _trigger(api)
    observed = _watch(deployment, run_id, lambda _: _run_state(deployment, run_id) in ("success", "failed"), "the end")

    _assert_complete(deployment, emulator, run_id)
    assert _creates(emulator) - creates_before == SHARDS, "every shard's job was created exactly once"
    workers = {row["hostname"] for row in _submit_tasks(deployment, run_id)}
    assert workers == {"worker-a", "worker-b"}, f"mapped tasks ran on {workers}.\n{deployment.diagnostics()}"
    assert observed.triggerers == {"triggerer-a", "triggerer-b"}, (
        f"waits were served by {observed.triggerers}: {observed.trigger_hosts}"
    )


def test_killing_a_worker_and_a_triggerer_mid_run_still_completes_with_no_duplicate_job(
    deployment: CeleryDeployment, gemini_emulator_server: EmulatorHandle, api: httpx.Client
) -> None:
    emulator = gemini_emulator_server
    emulator.control.configure(pending_seconds=0, running_seconds=40)
    creates_before = _creates(emulator)
    run_id = _trigger(api)

    def all_waiting_on_both_triggerers(observed: Observed) -> bool:
        tasks = _submit_tasks(deployment, run_id)
        deferred = [row for row in tasks if row["state"] == "deferred"]
        return len(deferred) == SHARDS and observed.triggerers == {"triggerer-a", "triggerer-b"}

    _watch(deployment, run_id, all_waiting_on_both_triggerers, "every shard deferred on both triggerers")
    if not CELERY_EXECUTOR_FORGETS_KILLED_WORKERS_TASKS:
        _watch(deployment, run_id, lambda _: deployment.worker_idle("worker-a"), "worker-a's Celery tasks to end")
    deployment.kill("worker-a")
    deployment.kill("triggerer-a")
    observed = _watch(deployment, run_id, lambda _: _run_state(deployment, run_id) in ("success", "failed"), "the end")

    _assert_complete(deployment, emulator, run_id)
    assert _creates(emulator) - creates_before == SHARDS, "no shard created a second job"
    assert "triggerer-b" in observed.triggerers
    resumed = {row["hostname"] for row in _submit_tasks(deployment, run_id)}
    assert resumed == {"worker-b"}, f"after the kill, tasks resumed on {resumed}"


def test_nothing_listens_beyond_loopback_and_no_log_holds_the_api_key(
    deployment: CeleryDeployment, gemini_emulator_server: EmulatorHandle
) -> None:
    stray, _ = listeners(deployment.airflow.processes())
    assert not stray, f"Listening beyond loopback: {stray}"
    key = (gemini_emulator_server.api_key or "").encode()
    assert key
    logs = readable_logs(deployment.airflow)
    assert logs
    holding = [str(path) for path in logs if key in path.read_bytes()]
    assert not holding, f"The API key is in {holding}"
