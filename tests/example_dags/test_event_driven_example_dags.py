"""The event-driven pipeline's two example DAGs under ``dag.test()``, against the emulator.

``gemini_batch_event_driven`` submits a job carrying a ``webhookConfig`` and its run ends while the job
still runs. The emulator then announces the job's end with a completion event; the receiver's own parser
(``plugins.webhooks.completion_from_event``) turns that delivery into the asset event's ``extra``, and
``gemini_batch_results_on_completion`` runs triggered by it (``run_triggered_by`` in ``conftest.py``
attaches the event to the run, as the scheduler does): it downloads that job's results and loads them.
The api-server, the scheduler and the safety net's watcher are ``tests/deployment/test_standalone_webhooks.py``'s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.assets import CompletedBatch, gemini_batch_completed
from airflow_provider_gemini_batch.emulator import EmulatorHandle

from .conftest import RunExampleDag
from .test_example_dags import api_calls, task_states, ticket_ids

pytestmark = pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated")

#: Nothing listens there: the emulator's deliveries fail, and the test reads what it tried to send.
WEBHOOK_BASE_URL = "http://127.0.0.1:9"
RECEIVER_URI = f"{WEBHOOK_BASE_URL}/gemini-batch/webhooks/gemini_default"
COMPLETED = gemini_batch_completed("gemini_default")


@pytest.fixture
def webhook_env(example_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The receiver's base URL for the submit DAG; return the results folder."""
    monkeypatch.setenv("GEMINI_WEBHOOK_BASE_URL", WEBHOOK_BASE_URL)
    return example_env.parent / "results"


def test_the_event_driven_dag_submits_with_a_webhook_and_ends_while_the_job_runs(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, webhook_env: Path
) -> None:
    control = gemini_connection.control
    control.configure(pending_seconds=0, running_seconds=120)

    dag_run = run_example_dag("gemini_batch_event_driven")

    assert dag_run.state == "success", task_states(dag_run)
    assert set(task_states(dag_run)) == {"build_requests", "submit_batch"}
    [batch] = control.batches()
    assert batch["state"] == "BATCH_STATE_RUNNING", "the run waited for the job"
    assert not api_calls(control, "GET", batch["name"]), "the job was polled"
    config = _job(gemini_connection, batch["name"])["webhookConfig"]
    assert config["uris"] == [RECEIVER_URI]
    assert config["userMetadata"] == {
        "pipeline": "support-triage",
        "dag_id": "gemini_batch_event_driven",
        "run_id": dag_run.run_id,
    }


def test_the_results_dag_downloads_and_loads_the_job_its_triggering_event_names(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, webhook_env: Path
) -> None:
    control = gemini_connection.control
    control.configure(pending_seconds=0, running_seconds=120)
    submit_run = run_example_dag("gemini_batch_event_driven")
    [batch] = control.batches()
    control.set_state(batch["name"], "SUCCEEDED")
    announced = _announcement(gemini_connection, batch["name"])
    assert announced.user_metadata["run_id"] == submit_run.run_id

    dag_run = run_example_dag(
        "gemini_batch_results_on_completion", triggering_events=[(COMPLETED, announced.as_extra())]
    )

    assert dag_run.state == "success", task_states(dag_run)
    assert _returned(dag_run, "announced_jobs") == [batch["name"]]
    [results_file] = webhook_env.glob(f"*{batch['name'].removeprefix('batches/')}.jsonl")
    lines = [json.loads(line) for line in results_file.read_text().splitlines()]
    assert {line["key"] for line in lines} == ticket_ids()
    assert _returned(dag_run, "load_results") == [{"batch": batch["name"], "results": len(ticket_ids()), "failed": 1}]


def test_a_job_announced_again_is_not_downloaded_again(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, webhook_env: Path
) -> None:
    """Both paths, or a redelivery on Airflow 3.0, can start a second run for one job: it keeps the file."""
    control = gemini_connection.control
    control.configure(pending_seconds=0, running_seconds=0)
    run_example_dag("gemini_batch_event_driven")
    [batch] = control.batches()
    announced = CompletedBatch(batch=batch["name"], state="BATCH_STATE_SUCCEEDED", source="poll").as_extra()
    first = run_example_dag("gemini_batch_results_on_completion", triggering_events=[(COMPLETED, announced)])
    [results_file] = webhook_env.glob("*.jsonl")
    written = results_file.stat()

    second = run_example_dag("gemini_batch_results_on_completion", triggering_events=[(COMPLETED, announced)])

    assert (first.state, second.state) == ("success", "success"), task_states(second)
    kept = results_file.stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (written.st_ino, written.st_mtime_ns), (
        "the complete file was written again"
    )
    assert _returned(second, "load_results") == [{"batch": batch["name"], "results": len(ticket_ids()), "failed": 1}]


def test_a_failed_job_is_reported_and_nothing_is_downloaded(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, webhook_env: Path
) -> None:
    control = gemini_connection.control
    control.configure(pending_seconds=0, running_seconds=120)
    run_example_dag("gemini_batch_event_driven")
    [batch] = control.batches()
    control.set_state(batch["name"], "FAILED", "The model is overloaded.")
    announced = _announcement(gemini_connection, batch["name"])
    assert not announced.succeeded

    dag_run = run_example_dag(
        "gemini_batch_results_on_completion", triggering_events=[(COMPLETED, announced.as_extra())]
    )

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert _returned(dag_run, "announced_jobs") == []
    assert states["load_results"] == "skipped"
    assert not webhook_env.exists() or not list(webhook_env.iterdir())


def _job(emulator: EmulatorHandle, name: str) -> dict[str, Any]:
    """The job as the API shows it (its ``metadata``), where ``webhookConfig`` is."""
    from airflow_provider_gemini_batch.hooks import GeminiBatchHook

    hook = GeminiBatchHook()
    try:
        batch = hook.get_batch(name)
    finally:
        hook.close()
    return batch.model_dump(by_alias=True)


def _announcement(emulator: EmulatorHandle, name: str) -> CompletedBatch:
    """The job's completion event as the emulator sent it, read as the receiver reads a delivery."""
    from airflow_provider_gemini_batch.plugins.webhooks import completion_from_event

    deadline = time.monotonic() + 10
    while not (deliveries := emulator.control.deliveries(name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(deliveries) == 1, f"Expected one delivery of {name}'s event: {deliveries}"
    completed = completion_from_event(deliveries[0]["payload"], deliveries[0]["webhook_id"])
    assert completed is not None, deliveries
    return completed


def _returned(dag_run: Any, task_id: str) -> Any:
    [ti] = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    return ti.xcom_pull(task_ids=task_id)
