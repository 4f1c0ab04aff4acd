"""A batch wait holds no worker slot: two deferred waits side by side under ``airflow standalone``.

The deployment is real: ``airflow standalone`` (scheduler with the LocalExecutor, triggerer,
dag-processor, api-server) on loopback, a fresh AIRFLOW_HOME and SQLite DB, ``core.parallelism = 1``
so the LocalExecutor forks exactly one worker process. Two runs of ``dags/gemini_standalone_deferral.py``
are triggered together; each submits a job that the emulator keeps RUNNING for 60 s. Both submit
tasks are seen ``deferred`` at the same instant, which one worker slot only allows if a waiting
batch does not hold it, and then both runs succeed. It takes about two minutes.

Nothing listens beyond loopback: the api-server binds 127.0.0.1, and the scheduler and triggerer run
without the log servers they would otherwise bind to every interface (see ``_standalone.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from tests.deployment._standalone import (
    POLL_SECONDS,
    Deployment,
    executor_workers,
    listeners,
    read_states,
    run_standalone,
)

pytestmark = pytest.mark.slow

DAG_ID = "gemini_standalone_deferral"
RUN_IDS = ("run_a", "run_b")
JOB_RUNNING_SECONDS = 60
# The runs take 70 to 85 s (60 s RUNNING, 5 s polls, task starts). With start-up and the stop, the
# worst case stays under five minutes.
RUNS_LIMIT_SECONDS = 130


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
        standalone.assert_alive()
        sample = read_states(standalone.database, DAG_ID)
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
                stray_listeners, loopback_ports = listeners(processes)
                worker_titles = executor_workers(processes, standalone.process.pid)
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
    assert "LocalExecutor(parallelism=1)" in standalone.output.read_text(errors="replace"), standalone.diagnostics(
        DAG_ID
    )
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
    """``airflow standalone`` with ``core.parallelism = 1`` (one LocalExecutor worker) against the emulator."""
    gemini_emulator.control.configure(pending_seconds=0, running_seconds=JOB_RUNNING_SECONDS)
    with run_standalone(tmp_path, gemini_emulator, (DAG_ID,), {"AIRFLOW__CORE__PARALLELISM": "1"}) as deployment:
        yield deployment
