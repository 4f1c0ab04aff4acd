"""Event-driven completion under a real ``airflow standalone``: webhooks in, asset runs out, a poll as safety net.

One deployment (see ``_standalone.py``) serves every scenario, with the DAGs of ``dags/webhooks/``:
``gemini_webhooks_submit`` submits a job whose ``webhookConfig`` points at the api-server's receiver
(``/gemini-batch/webhooks/gemini_default``, the provider's plugin, loaded from its entry point) and
ends at once; ``gemini_webhooks_results`` is scheduled on ``gemini_batch_completed("gemini_default")``,
watched by ``GeminiBatchCompletedTrigger`` every :data:`POLL_INTERVAL_SECONDS`. The session emulator
delivers each job's completion, signed with its ``job_webhook_secret``, to the api-server's port; the
connection's ``webhook_secret`` extra is that secret.

- a forged POST (a wrong signature, no signature) gets 401 and records nothing;
- a job completes: the results DAG runs exactly once for it and downloads every result;
- a delivery sent twice (emulator fault) makes one asset event and one run;
- deliveries dropped (emulator fault): the safety net starts the results DAG within its interval;
- neither the API key nor the signing secret is in any log or asset event.

On Airflow 3.0-3.2 there is no asset state store, so the receiver and the poll cannot tell each other
what they announced: the poll announces again a job the webhook announced (``triggers/completions.py``
says so). There each job still gets exactly one *webhook* event and one run from it; a second run the
poll may add finds the results already downloaded. The module takes about three minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.metadata
import json
import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.version import Version

from airflow_provider_gemini_batch.assets import CompletedBatch
from airflow_provider_gemini_batch.completions import GRACE
from airflow_provider_gemini_batch.emulator import EmulatorHandle
from tests.deployment._standalone import (
    DAGS_FOLDER,
    AssetEventRow,
    Deployment,
    asset_events,
    dag_runs,
    readable_logs,
    run_standalone,
    wait_for,
)

pytestmark = pytest.mark.slow

SUBMIT_DAG = "gemini_webhooks_submit"
RESULTS_DAG = "gemini_webhooks_results"
DAG_IDS = (SUBMIT_DAG, RESULTS_DAG)
ASSET_NAME = "gemini_batch_completed/gemini_default"
RECEIVER_PATH = "/gemini-batch/webhooks/gemini_default"
REQUEST_COUNT = 3  # as dags/webhooks/gemini_webhooks.py submits

AIRFLOW_VERSION = Version(importlib.metadata.version("apache-airflow"))
# Airflow 3.3 brought the asset state store, where the receiver and the poll mark what they announced.
HAS_ASSET_STATE_STORE = Version("3.3") <= AIRFLOW_VERSION

POLL_INTERVAL_SECONDS = 5
# The safety net leaves a job to its webhook this long after its end (completions.GRACE).
GRACE_SECONDS = GRACE.total_seconds()
JOB_RUNNING_SECONDS = 2
# From the event to the run's start: the scheduler's loop, the dag-processor having parsed the DAG.
SCHEDULER_SLACK_SECONDS = 20
SUBMIT_LIMIT_SECONDS = 60
RESULTS_LIMIT_SECONDS = 60
# The watcher's trigger ran 30 s after the DAGs were active (Airflow 3.0, two cores).
WATCHER_LIMIT_SECONDS = 90


def test_a_forged_post_gets_401_and_records_nothing(standalone: Deployment) -> None:
    body = json.dumps(
        {
            "type": "batch.succeeded",
            "version": "v1",
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {"id": "batches/forged", "user_metadata": {"run_id": "forged"}},
        }
    ).encode()
    message_id = f"msg_{secrets.token_hex(12)}"
    unix_seconds = str(int(time.time()))
    wrong_key = secrets.token_bytes(32)
    signature = base64.b64encode(
        hmac.new(wrong_key, f"{message_id}.{unix_seconds}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    signed_wrongly = {
        "webhook-id": message_id,
        "webhook-timestamp": unix_seconds,
        "webhook-signature": f"v1,{signature}",
    }

    with httpx.Client(base_url=standalone.api_url, timeout=10) as client:
        answers = {
            "a wrong signature": client.post(RECEIVER_PATH, content=body, headers=signed_wrongly),
            "no signature": client.post(RECEIVER_PATH, content=body, headers={"content-type": "application/json"}),
        }

    statuses = {forgery: answer.status_code for forgery, answer in answers.items()}
    assert statuses == dict.fromkeys(answers, 401), f"{statuses}\n{standalone.diagnostics()}"
    # Give the scheduler a loop or two to show that nothing follows.
    time.sleep(3)
    assert _events(standalone) == [], "a forged POST recorded an asset event"
    assert _runs(standalone, RESULTS_DAG) == {}, "a forged POST started the results DAG"


def test_a_completed_job_runs_the_results_dag_once_and_downloads_every_result(
    standalone: Deployment, gemini_emulator_server: EmulatorHandle, results_dir: Path
) -> None:
    job = _submit(standalone, gemini_emulator_server)
    run_id = _wait_for_results_run(standalone, job, source="webhook")
    _seconds_to_start(standalone, gemini_emulator_server, job, run_id)

    deliveries = gemini_emulator_server.control.deliveries(job)
    assert [delivery["outcome"] for delivery in deliveries] == ["delivered"], deliveries
    _assert_announced_once(standalone, job, run_id, results_dir)
    assert _result_lines(results_dir, job) == REQUEST_COUNT


def test_a_delivery_sent_twice_makes_one_run(
    standalone: Deployment, gemini_emulator_server: EmulatorHandle, results_dir: Path
) -> None:
    gemini_emulator_server.control.inject_fault("webhook_duplicate", path_contains=RECEIVER_PATH)
    job = _submit(standalone, gemini_emulator_server)
    run_id = _wait_for_results_run(standalone, job, source="webhook")
    _seconds_to_start(standalone, gemini_emulator_server, job, run_id)

    [delivery] = gemini_emulator_server.control.deliveries(job)
    assert (delivery["copies"], delivery["outcome"]) == (2, "delivered"), delivery
    assert len(delivery["attempts"]) >= 2, f"the event was not sent twice: {delivery}"
    _assert_announced_once(standalone, job, run_id, results_dir)
    assert _result_lines(results_dir, job) == REQUEST_COUNT


def test_with_deliveries_dropped_the_safety_net_starts_the_results_dag_within_its_interval(
    standalone: Deployment, gemini_emulator_server: EmulatorHandle, results_dir: Path
) -> None:
    gemini_emulator_server.control.inject_fault("webhook_drop", path_contains=RECEIVER_PATH)
    job = _submit(standalone, gemini_emulator_server)
    run_id = _wait_for_results_run(standalone, job, source="poll")

    [delivery] = gemini_emulator_server.control.deliveries(job)
    assert delivery["outcome"] == "dropped", delivery
    delay = _seconds_to_start(standalone, gemini_emulator_server, job, run_id)
    assert delay <= GRACE_SECONDS + POLL_INTERVAL_SECONDS + SCHEDULER_SLACK_SECONDS, (
        f"The results run started {delay:.1f} s after {job} ended.\n{standalone.diagnostics(RESULTS_DAG)}"
    )
    events = _events_of(standalone, job)
    assert [event.extra["payload"]["source"] for event in events] == ["poll"], events
    assert _consumers(events) == {run_id}
    assert _result_lines(results_dir, job) == REQUEST_COUNT


def test_neither_the_api_key_nor_the_signing_secret_is_in_a_log_or_an_event(
    standalone: Deployment, gemini_emulator_server: EmulatorHandle
) -> None:
    secret = gemini_emulator_server.control.job_webhook_secret()
    needles = {"the API key": gemini_emulator_server.api_key.encode(), "the signing secret": secret.encode()}
    logs = readable_logs(standalone)
    assert any("dag_id=" in str(path) for path in logs), f"no task logs to search among {logs}"
    hits = [f"{what} in {path}" for path in logs for what, needle in needles.items() if needle in path.read_bytes()]
    extras = json.dumps([event.extra for event in _events(standalone)]).encode()
    hits += [f"{what} in an asset event's extra" for what, needle in needles.items() if needle in extras]
    assert hits == []
    # Shown with -rP: what each scenario took on this machine.
    print(f"standalone ready after {standalone.ready_seconds or 0:.0f} s", *standalone.timeline, sep="\n")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("webhook-results")


@pytest.fixture(scope="module")
def standalone(
    tmp_path_factory: pytest.TempPathFactory, gemini_emulator_server: EmulatorHandle, results_dir: Path
) -> Iterator[Deployment]:
    """One ``airflow standalone`` for every scenario, the session emulator delivering to its api-server."""
    control = gemini_emulator_server.control
    control.reset()
    control.configure(pending_seconds=0, running_seconds=JOB_RUNNING_SECONDS)
    settings = {
        "AIRFLOW__CORE__PARALLELISM": "4",
        "GEMINI_COMPLETION_POLL_INTERVAL": str(POLL_INTERVAL_SECONDS),
        "GEMINI_RESULTS_DIR": str(results_dir),
    }
    directory = tmp_path_factory.mktemp("webhooks")
    with run_standalone(
        directory,
        gemini_emulator_server,
        DAG_IDS,
        settings,
        dags_folder=DAGS_FOLDER / "webhooks",
        connection_extra={"webhook_secret": control.job_webhook_secret()},
    ) as deployment:
        with httpx.Client(base_url=deployment.api_url, timeout=30) as api:
            variable = {"key": "gemini_webhook_base_url", "value": deployment.api_url}
            response = api.post("/api/v2/variables", json=variable)
            assert response.status_code == 201, f"Setting the Variable: {response.status_code} {response.text[:300]}"
        # The triggerer takes up the watcher some seconds after the DAG is active: until it has looked
        # once, a job would be announced by the webhook alone, and the two paths not tested together.
        started = time.monotonic()
        wait_for(
            deployment, lambda: _listed(gemini_emulator_server), WATCHER_LIMIT_SECONDS, "the safety net's first look"
        )
        deployment.timeline.append(f"the safety net first looked {time.monotonic() - started:.0f} s after start-up")
        yield deployment
    control.clear_faults()


def _listed(emulator: EmulatorHandle) -> bool | None:
    """Whether the job list was read (the safety net's walk; nothing else here lists jobs)."""
    listings = [
        call for call in emulator.control.requests() if call["method"] == "GET" and call["path"].endswith("/batches")
    ]
    return True if listings else None


def _submit(standalone: Deployment, emulator: EmulatorHandle) -> str:
    """Trigger the submit DAG; wait until its run succeeded; return its job's name."""
    run_id = f"webhooks_{time.time_ns()}"
    with httpx.Client(base_url=standalone.api_url, timeout=30) as api:
        body = {"dag_run_id": run_id, "logical_date": None}
        response = api.post(f"/api/v2/dags/{SUBMIT_DAG}/dagRuns", json=body)
    assert response.status_code == 200, f"Triggering {SUBMIT_DAG}: {response.status_code} {response.text[:300]}"

    def submitted() -> str | None:
        run = (_runs(standalone, SUBMIT_DAG) or {}).get(run_id)
        if run is None or run["state"] not in ("success", "failed"):
            return None
        return str(run["state"])

    state = wait_for(standalone, submitted, SUBMIT_LIMIT_SECONDS, f"the run {run_id} of {SUBMIT_DAG}", SUBMIT_DAG)
    assert state == "success", f"The submit run ended {state}.\n{standalone.diagnostics(SUBMIT_DAG)}"
    jobs = [batch["name"] for batch in emulator.control.batches() if batch["displayName"].startswith(run_id)]
    assert len(jobs) == 1, f"Expected one job for {run_id}: {emulator.control.batches()}"
    standalone.timeline.append(f"{time.strftime('%H:%M:%S')}  {run_id} submitted {jobs[0]}")
    return jobs[0]


def _wait_for_results_run(standalone: Deployment, job: str, source: str) -> str:
    """Wait until a run of the results DAG that consumed an event (from ``source``) naming ``job`` succeeded."""

    def finished() -> str | None:
        runs = _runs(standalone, RESULTS_DAG)
        for event in _events_of(standalone, job):
            if _source(event) != source:
                continue
            for run_id in event.run_ids:
                if runs.get(run_id) is not None and runs[run_id]["state"] in ("success", "failed"):
                    return run_id
        return None

    run_id = wait_for(
        standalone, finished, RESULTS_LIMIT_SECONDS, f"a run of {RESULTS_DAG} for {job} ({source})", RESULTS_DAG
    )
    run = _runs(standalone, RESULTS_DAG)[run_id]
    assert run["state"] == "success", f"The run {run_id} ended {run['state']}.\n{standalone.diagnostics(RESULTS_DAG)}"
    return run_id


def _seconds_to_start(standalone: Deployment, emulator: EmulatorHandle, job: str, run_id: str) -> float:
    """Seconds from the job's end (its ``endTime``) to the start of the results run; noted in the timeline."""
    delay = (_utc(_runs(standalone, RESULTS_DAG)[run_id]["start_date"]) - _end_time(emulator, job)).total_seconds()
    standalone.timeline.append(f"{job}: the results run {run_id} started {delay:.1f} s after the job ended")
    return delay


def _assert_announced_once(standalone: Deployment, job: str, run_id: str, results_dir: Path) -> None:
    """One webhook event for the job and one run from it; on 3.3 nothing else (3.0: see the docstring)."""
    written = _results_file(results_dir, job).stat()
    # The poll looks every few seconds: give it the time to (wrongly) announce the job again.
    time.sleep(POLL_INTERVAL_SECONDS + 2)
    events = _events_of(standalone, job)
    by_webhook = [event for event in events if _source(event) == "webhook"]
    standalone.timeline.append(
        f"{job}: events from {[_source(event) for event in events]}, seen by runs {sorted(_consumers(events))}"
    )
    diagnostics = f"{events}\n{standalone.diagnostics(RESULTS_DAG)}"
    assert len(by_webhook) == 1, f"Expected one webhook event for {job}: {diagnostics}"
    assert _consumers(by_webhook) == {run_id}, diagnostics
    if HAS_ASSET_STATE_STORE:
        assert events == by_webhook, f"The poll announced {job} again: {diagnostics}"
        assert _runs_that_saw(standalone, job) == {run_id}, diagnostics
        return
    # Airflow 3.0: the poll's announcement, if any, makes one more run, which keeps the complete file.
    assert len(events) <= 2, diagnostics
    if len(events) == 2:
        again = _wait_for_results_run(standalone, job, source="poll")
        assert again != run_id, diagnostics
        rewritten = _results_file(results_dir, job).stat()
        assert (rewritten.st_ino, rewritten.st_mtime_ns) == (written.st_ino, written.st_mtime_ns), (
            f"The run {again} downloaded {job}'s results again.\n{standalone.diagnostics(RESULTS_DAG)}"
        )


def _runs(standalone: Deployment, dag_id: str) -> dict[str, Any]:
    return wait_for(standalone, lambda: dag_runs(standalone.database, dag_id), 30, "a read of the DB")


def _events(standalone: Deployment) -> list[AssetEventRow]:
    return wait_for(standalone, lambda: asset_events(standalone.database, ASSET_NAME), 30, "a read of the DB")


def _events_of(standalone: Deployment, job: str) -> list[AssetEventRow]:
    return [event for event in _events(standalone) if _batch(event) == job]


def _batch(event: AssetEventRow) -> str | None:
    completed = CompletedBatch.from_extra(event.extra)
    return completed.batch if completed else None


def _source(event: AssetEventRow) -> str | None:
    completed = CompletedBatch.from_extra(event.extra)
    return completed.source if completed else None


def _consumers(events: list[AssetEventRow]) -> set[str]:
    return {run_id for event in events for run_id in event.run_ids}


def _runs_that_saw(standalone: Deployment, job: str) -> set[str]:
    return _consumers(_events_of(standalone, job))


def _results_file(results_dir: Path, job: str) -> Path:
    """The job's one results file, named ``<display name>-<job id>.jsonl``."""
    files = sorted(results_dir.glob(f"*{job.removeprefix('batches/')}.jsonl"))
    assert len(files) == 1, f"Expected one results file for {job} in {sorted(results_dir.iterdir())}"
    return files[0]


def _result_lines(results_dir: Path, job: str) -> int:
    return sum(1 for line in _results_file(results_dir, job).read_bytes().splitlines() if line.strip())


def _end_time(emulator: EmulatorHandle, job: str) -> datetime:
    response = httpx.get(f"{emulator.base_url}/v1beta/{job}", headers={"x-goog-api-key": emulator.api_key}, timeout=10)
    response.raise_for_status()
    body = response.json()
    return _utc(body.get("metadata", body)["endTime"])


def _utc(value: str) -> datetime:
    """A timestamp from the DB or the API (``...Z``, ``+00:00`` or naive UTC) as an aware datetime."""
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
