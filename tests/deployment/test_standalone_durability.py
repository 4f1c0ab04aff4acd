"""Durable submit under a real ``airflow standalone``: what clears, marks, kills and restarts do to the job.

One deployment (see ``_standalone.py``) serves the four scenarios, one DAG each (``dags/gemini_durability.py``):

- a deferred submit task cleared: the job is kept and the next try reconnects (one job, never cancelled);
- marked failed while deferred: the job is cancelled on Airflow 3.3 (the trigger's ``on_kill``);
  on 3.0, which has no trigger ``on_kill``, it is left running;
- the triggerer SIGKILLed mid-wait and another one started: the wait goes on, one job, never cancelled;
- the task process SIGKILLed while its create is held in flight: the retry finds the intent in the
  task state store, waits for the held create to land and reconnects (Airflow 3.3+ only).

Every job lives in the session emulator (a module-scoped deployment outlives the per-test reset),
so each scenario picks its own jobs out by display name: ``<dag_id>-<run_id> (airflow:<key>)``.
The module takes about five minutes.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from packaging.version import Version

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from tests.deployment._standalone import Deployment, listeners, read_states, run_standalone, title, wait_for

pytestmark = pytest.mark.slow

CLEAR_DAG = "gemini_durability_clear_deferred"
MARK_FAILED_DAG = "gemini_durability_mark_failed_deferred"
TRIGGERER_DAG = "gemini_durability_triggerer_restart"
KILLED_CREATE_DAG = "gemini_durability_killed_create"
DAG_IDS = (CLEAR_DAG, MARK_FAILED_DAG, TRIGGERER_DAG, KILLED_CREATE_DAG)

AIRFLOW_VERSION = Version(importlib.metadata.version("apache-airflow"))
# Airflow 3.3 brought both the trigger's on_kill and the task state store.
HAS_TRIGGER_ON_KILL = HAS_TASK_STATE_STORE = Version("3.3") <= AIRFLOW_VERSION

# Long enough to act on a deferred task (it defers 5 to 15 s after triggering) before the job ends.
JOB_RUNNING_SECONDS = 40
# The held create of the kill scenario: the retry starts while it is still held.
HOLD_CREATE_SECONDS = 25
# A replacement triggerer adopts the triggers of one whose heartbeat is older than this.
TRIGGERER_HEALTH_CHECK_SECONDS = 15
DEFER_LIMIT_SECONDS = 60
RUN_LIMIT_SECONDS = 120
TERMINAL_RUN_STATES = ("success", "failed")


def test_clearing_a_deferred_task_keeps_its_job(
    standalone: Deployment, gemini_emulator_server: EmulatorHandle, api: httpx.Client
) -> None:
    control = gemini_emulator_server.control
    control.configure(pending_seconds=0, running_seconds=JOB_RUNNING_SECONDS)
    run_id = _trigger(api, CLEAR_DAG)
    _wait_for_task(standalone, api, CLEAR_DAG, run_id, "deferred", DEFER_LIMIT_SECONDS)
    [job] = _jobs(gemini_emulator_server, CLEAR_DAG, run_id)
    _wait_for_trigger_poll(standalone, gemini_emulator_server, job["name"], CLEAR_DAG)

    body = {"dry_run": False, "task_ids": ["submit"], "dag_run_id": run_id, "only_failed": False}
    response = api.post(f"/api/v2/dags/{CLEAR_DAG}/clearTaskInstances", json=body)
    assert response.status_code == 200, f"Clearing: {response.status_code} {response.text[:300]}"

    run_state = _wait_for_run_end(standalone, api, CLEAR_DAG, run_id)
    task = _task(api, CLEAR_DAG, run_id)
    jobs = _jobs(gemini_emulator_server, CLEAR_DAG, run_id)
    diagnostics = standalone.diagnostics(CLEAR_DAG)
    assert run_state == "success", f"The run ended {run_state}.\n{diagnostics}"
    assert task["try_number"] >= 2, f"No later try ran after the clear: {task}.\n{diagnostics}"
    assert [batch["name"] for batch in jobs] == [job["name"]], f"Expected the one job {job['name']}: {jobs}"
    assert jobs[0]["state"] == "BATCH_STATE_SUCCEEDED", jobs
    assert not _cancels(gemini_emulator_server, job["name"]), f"The cleared task's job was cancelled.\n{diagnostics}"


def test_marking_a_deferred_task_failed_ends_its_job(
    standalone: Deployment, gemini_emulator_server: EmulatorHandle, api: httpx.Client
) -> None:
    control = gemini_emulator_server.control
    control.configure(pending_seconds=0, running_seconds=JOB_RUNNING_SECONDS)
    run_id = _trigger(api, MARK_FAILED_DAG)
    _wait_for_task(standalone, api, MARK_FAILED_DAG, run_id, "deferred", DEFER_LIMIT_SECONDS)
    [job] = _jobs(gemini_emulator_server, MARK_FAILED_DAG, run_id)
    _wait_for_trigger_poll(standalone, gemini_emulator_server, job["name"], MARK_FAILED_DAG)

    path = f"/api/v2/dags/{MARK_FAILED_DAG}/dagRuns/{run_id}/taskInstances/submit"
    response = api.patch(path, json={"new_state": "failed"})
    assert response.status_code == 200, f"Marking failed: {response.status_code} {response.text[:300]}"
    marked = time.monotonic()
    run_state = _wait_for_run_end(standalone, api, MARK_FAILED_DAG, run_id)
    assert run_state == "failed", f"The run ended {run_state}.\n{standalone.diagnostics(MARK_FAILED_DAG)}"

    if HAS_TRIGGER_ON_KILL:
        state = wait_for(
            standalone,
            lambda: _state_if(gemini_emulator_server, job["name"], "BATCH_STATE_CANCELLED"),
            30,
            f"{job['name']} to be cancelled after the task was marked failed",
            MARK_FAILED_DAG,
        )
        assert state == "BATCH_STATE_CANCELLED"
        assert _cancels(gemini_emulator_server, job["name"]), "Cancelled, but not through the API's :cancel"
    else:
        # Airflow 3.0 drops the trigger without calling anything on it: the job is left to run on
        # (and to bill). Give the triggerer a few of its sync cycles to show nothing else happens.
        time.sleep(max(0.0, 10 - (time.monotonic() - marked)))
        [after] = _jobs(gemini_emulator_server, MARK_FAILED_DAG, run_id)
        assert after["state"] == "BATCH_STATE_RUNNING", (
            f"On Airflow {AIRFLOW_VERSION} the job was expected left running"
        )
        assert not _cancels(gemini_emulator_server, job["name"])
    assert len(_jobs(gemini_emulator_server, MARK_FAILED_DAG, run_id)) == 1


def test_a_killed_triggerer_is_replaced_and_the_wait_goes_on(
    standalone: Deployment, gemini_emulator_server: EmulatorHandle, api: httpx.Client
) -> None:
    control = gemini_emulator_server.control
    control.configure(pending_seconds=0, running_seconds=JOB_RUNNING_SECONDS)
    run_id = _trigger(api, TRIGGERER_DAG)
    _wait_for_task(standalone, api, TRIGGERER_DAG, run_id, "deferred", DEFER_LIMIT_SECONDS)
    [job] = _jobs(gemini_emulator_server, TRIGGERER_DAG, run_id)
    _wait_for_trigger_poll(standalone, gemini_emulator_server, job["name"], TRIGGERER_DAG)

    killed = _kill_triggerers(standalone)
    standalone.timeline.append(f"killed the triggerer: {killed}")
    # airflow standalone does not restart a component that died (its loop only relays output).
    time.sleep(2)
    restarted = [title(process) for process in standalone.processes() if _is_triggerer(process)]
    if not restarted:
        replacement = standalone.start_component("triggerer")
        standalone.timeline.append(f"started a replacement triggerer, pid {replacement.pid}")

    run_state = _wait_for_run_end(standalone, api, TRIGGERER_DAG, run_id, RUN_LIMIT_SECONDS + 30)
    jobs = _jobs(gemini_emulator_server, TRIGGERER_DAG, run_id)
    diagnostics = standalone.diagnostics(TRIGGERER_DAG)
    assert run_state == "success", f"The run ended {run_state}.\n{diagnostics}"
    assert _task(api, TRIGGERER_DAG, run_id)["try_number"] == 1, diagnostics
    assert [batch["name"] for batch in jobs] == [job["name"]], f"Expected the one job {job['name']}: {jobs}"
    assert jobs[0]["state"] == "BATCH_STATE_SUCCEEDED", jobs
    assert not _cancels(gemini_emulator_server, job["name"]), f"The job was cancelled.\n{diagnostics}"
    # The replacement triggerer, started through the same shim, serves no logs beyond loopback either.
    stray, _ = listeners(standalone.processes())
    assert not stray, f"Listening beyond loopback: {stray}"


@pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="needs the task state store, Airflow 3.3+")
def test_a_task_killed_during_its_create_reconnects_on_retry(
    standalone: Deployment, gemini_emulator_server: EmulatorHandle, api: httpx.Client
) -> None:
    control = gemini_emulator_server.control
    # The reconnected job runs long enough that the trigger fires well after the deferral: an event
    # within seconds of deferring can meet the LocalExecutor's late report of the deferring process as
    # "success" while the resumed try is queued, and the scheduler then fails the task (an Airflow race
    # seen once in CI, not the provider's doing).
    control.configure(pending_seconds=0, running_seconds=30)
    control.inject_fault("hold_create", seconds=HOLD_CREATE_SECONDS, count=1)
    run_id = _trigger(api, KILLED_CREATE_DAG)
    ti_id = _wait_for_task(standalone, api, KILLED_CREATE_DAG, run_id, "running", DEFER_LIMIT_SECONDS)["id"]
    # The held create has arrived once its fault rule is taken (the request log shows it only when answered).
    wait_for(
        standalone,
        lambda: True if not _pending_faults(gemini_emulator_server) else None,
        30,
        "the create to reach the emulator",
        KILLED_CREATE_DAG,
    )
    runner = wait_for(
        standalone,
        lambda: _task_runner(standalone, ti_id),
        10,
        f"the process of task {ti_id} among {[title(process) for process in standalone.processes()]}",
        KILLED_CREATE_DAG,
    )
    runner.send_signal(signal.SIGKILL)
    standalone.timeline.append(f"SIGKILLed {title(runner)} (pid {runner.pid}) with its create held")
    assert not _jobs(gemini_emulator_server, KILLED_CREATE_DAG, run_id), "The create was not held"

    run_state = _wait_for_run_end(standalone, api, KILLED_CREATE_DAG, run_id)
    task = _task(api, KILLED_CREATE_DAG, run_id)
    jobs = _jobs(gemini_emulator_server, KILLED_CREATE_DAG, run_id)
    diagnostics = standalone.diagnostics(KILLED_CREATE_DAG)
    assert run_state == "success", f"The run ended {run_state}.\n{diagnostics}"
    assert task["try_number"] == 2, f"Expected the retry to finish the task: {task}.\n{diagnostics}"
    assert len(jobs) == 1, f"Expected exactly one job: {jobs}.\n{diagnostics}"
    assert jobs[0]["state"] == "BATCH_STATE_SUCCEEDED", jobs
    assert not _cancels(gemini_emulator_server, jobs[0]["name"]), diagnostics


@pytest.fixture(scope="module")
def standalone(
    tmp_path_factory: pytest.TempPathFactory, gemini_emulator_server: EmulatorHandle
) -> Iterator[Deployment]:
    """One ``airflow standalone`` for every scenario here, its connection pointing at the session emulator."""
    settings = {
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_SECONDS),
    }
    directory = tmp_path_factory.mktemp("durability")
    with run_standalone(directory, gemini_emulator_server, DAG_IDS, settings) as deployment:
        yield deployment


@pytest.fixture
def api(standalone: Deployment) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=standalone.api_url, timeout=30) as client:
        yield client


def _trigger(api: httpx.Client, dag_id: str) -> str:
    run_id = f"run_{time.time_ns()}"
    response = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
    assert response.status_code == 200, f"Triggering {dag_id}: {response.status_code} {response.text[:300]}"
    return run_id


def _task(api: httpx.Client, dag_id: str, run_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/submit")
    response.raise_for_status()
    task: dict[str, Any] = response.json()
    return task


def _wait_for_task(
    standalone: Deployment, api: httpx.Client, dag_id: str, run_id: str, state: str, limit: float
) -> dict[str, Any]:
    """Wait until the submit task is in ``state``; return the task instance as the REST API shows it."""

    def reached() -> dict[str, Any] | None:
        _note_states(standalone, dag_id)
        task = _task(api, dag_id, run_id)
        return task if task["state"] == state else None

    return wait_for(standalone, reached, limit, f"{dag_id}'s submit task to be {state}", dag_id)


def _wait_for_run_end(
    standalone: Deployment, api: httpx.Client, dag_id: str, run_id: str, limit: float = RUN_LIMIT_SECONDS
) -> str:
    def ended() -> str | None:
        _note_states(standalone, dag_id)
        response = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        state: str = response.json()["state"]
        return state if state in TERMINAL_RUN_STATES else None

    return wait_for(standalone, ended, limit, f"the run {run_id} of {dag_id} to end", dag_id)


def _note_states(standalone: Deployment, dag_id: str) -> None:
    """Add the DAG's task and run states to the timeline when they changed."""
    states = read_states(standalone.database, dag_id)
    if states is None or _last_states.get(dag_id) == states:
        return
    _last_states[dag_id] = states
    standalone.timeline.append(f"{time.strftime('%H:%M:%S')}  {dag_id}: tasks {states[0]}  runs {states[1]}")


_last_states: dict[str, tuple[dict[str, str], dict[str, str]]] = {}


def _wait_for_trigger_poll(standalone: Deployment, emulator: EmulatorHandle, batch_name: str, dag_id: str) -> None:
    """Wait for the trigger's first poll: a task marked or cleared before the triggerer runs its trigger
    has no trigger to kill (Airflow deletes the trigger row before a triggerer ever loads it).

    The submit task itself looks the job up once before it defers; the trigger's first poll is the next look.
    """
    looked_before = len(_polls(emulator, batch_name))
    wait_for(
        standalone,
        lambda: True if len(_polls(emulator, batch_name)) > looked_before else None,
        30,
        f"the triggerer to poll {batch_name}",
        dag_id,
    )


def _polls(emulator: EmulatorHandle, batch_name: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in emulator.control.requests()
        if entry["method"] == "GET" and entry["path"].endswith(batch_name)
    ]


def _jobs(emulator: EmulatorHandle, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """This run's jobs: their display names start with the rendered ``{{ dag.dag_id }}-{{ run_id }}``."""
    prefix = f"{dag_id}-{run_id} "
    return [batch for batch in emulator.control.batches() if batch["displayName"].startswith(prefix)]


def _cancels(emulator: EmulatorHandle, batch_name: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in emulator.control.requests()
        if entry["method"] == "POST" and entry["path"].endswith(f"{batch_name}:cancel")
    ]


def _state_if(emulator: EmulatorHandle, batch_name: str, state: str) -> str | None:
    found = [batch["state"] for batch in emulator.control.batches() if batch["name"] == batch_name]
    return state if found == [state] else None


def _pending_faults(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    response = httpx.get(f"{emulator.base_url}/_emulator/faults", timeout=10)
    response.raise_for_status()
    faults: list[dict[str, Any]] = response.json()["faults"]
    return faults


def _is_triggerer(process: psutil.Process) -> bool:
    return "triggerer" in title(process)


def _kill_triggerers(standalone: Deployment) -> list[str]:
    """SIGKILL every triggerer process (and whatever it forked), as a lost machine would end them."""
    targets: list[psutil.Process] = []
    for process in standalone.processes():
        if _is_triggerer(process):
            targets.append(process)
            with contextlib.suppress(psutil.Error):
                targets += process.children(recursive=True)
    assert targets, f"No triggerer process found.\n{standalone.diagnostics()}"
    killed = []
    for process in targets:
        try:
            process.kill()
            killed.append(f"{title(process)} (pid {process.pid})")
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(targets, timeout=10)
    # A zombie is dead: its parent (standalone, or the killed triggerer's reaper) has yet to reap it.
    survivors = [process for process in alive if _status(process) != psutil.STATUS_ZOMBIE]
    assert not survivors, f"Triggerer processes survived SIGKILL: {survivors}"
    return killed


def _status(process: psutil.Process) -> str:
    try:
        return str(process.status())
    except psutil.NoSuchProcess:
        return psutil.STATUS_DEAD


def _task_runner(standalone: Deployment, ti_id: str) -> psutil.Process | None:
    """The process that runs the task's ``execute``: titled ``airflow worker -- <ti id>`` by the task runner.

    (The LocalExecutor worker that supervises it is titled ``... LocalExecutor ...``.)
    """
    for process in standalone.processes():
        name = title(process)
        if f"-- {ti_id}" in name and "LocalExecutor" not in name:
            return process
    return None
