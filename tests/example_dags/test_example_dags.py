"""Every example DAG runs to completion under ``dag.test()`` in real Airflow, against the emulator.

How deferral is proven: ``dag.test()`` runs a deferred task's trigger inline, so a run that merely
*finished* could have polled synchronously. Two independent records show the task really deferred:

- Airflow's own audit log (the ``log`` table) holds a ``deferred`` event for the task in this run. The
  execution API writes it when the task hands itself over to a trigger, and only then.
- The emulator's request log shows the job polled again and again while it was PENDING and RUNNING
  (``PHASE_SECONDS`` each, polled every ``POLL_INTERVAL_SECONDS``). The operator or sensor checks the job
  once before deferring and the trigger's event carries the final state, so the other polls can only
  come from the trigger's loop.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import ECHO_PREFIX, FAILURE_MARKER, EmulatorControl, EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook

from .conftest import EXAMPLE_DAGS_FOLDER, RunExampleDag

# Airflow 3.0's execution API (which dag.test() runs in-process) uses a constant newer Starlette deprecates
# with a UserWarning: Airflow's debt, not ours, and it would fail every task under filterwarnings=error.
pytestmark = pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated")

PROMPT = {"contents": [{"parts": [{"text": "hold the slot"}]}]}
EXAMPLE_DAG_IDS = {
    "gemini_batch_nightly",
    "gemini_embeddings_batch",
    "gemini_batch_cached_document",
    "gemini_batch_cleanup",
    "gemini_batch_event_driven",
    "gemini_batch_results_on_completion",
    "gemini_batch_sharded",
    "gemini_common_ai_batch",
    "gemini_batch_images",
    "gemini_batch_multimodal",
}
#: The common-ai example needs the [common-ai] extra, which cannot be installed below pydantic 2.12
#: (tests/test_common_ai.py says why): there its file fails to import, and only that one.
COMMON_AI_INSTALLED = importlib.util.find_spec("airflow.providers.common.ai") is not None
COMMON_AI_EXAMPLE = "gemini_common_ai_batch"
# The sensor or operator polls once before deferring; more polls than this mean the trigger polled too.
MIN_STATUS_POLLS = 4


def ticket_ids() -> set[str]:
    with (EXAMPLE_DAGS_FOLDER / "data" / "support_tickets.csv").open(newline="", encoding="utf-8") as stream:
        return {row["ticket_id"] for row in csv.DictReader(stream)}


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def deferred_tasks(dag_run: Any) -> set[str]:
    """Tasks that Airflow recorded as deferred in this run.

    Airflow 3.1+ writes a ``deferred`` event to its audit log when a task hands itself over to a
    trigger. Airflow 3.0 writes no such event; there the registered triggers are the record: a task
    counts as deferred when a ``GeminiBatchTrigger`` row was stored for this run's batch, and the
    task instance ran ``execute_complete`` (its ``next_method`` cleared, its try not repeated).
    """
    from airflow.models.log import Log
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(Log.task_id).where(
            Log.dag_id == dag_run.dag_id, Log.run_id == dag_run.run_id, Log.event == "deferred"
        )
        audited = set(session.scalars(query))
        if audited:
            return audited
        batch_names = {
            trigger.kwargs.get("batch_name")
            for trigger in session.scalars(select(Trigger))
            if trigger.classpath.endswith("GeminiBatchTrigger")
        }
    return {ti.task_id for ti in dag_run.get_task_instances() if waited_batch(ti) in batch_names}


def waited_batch(ti: Any) -> str | None:
    """The batch a task waited on: the submit operator pushes ``batch_name``, the sensor returns a summary."""
    pushed = ti.xcom_pull(task_ids=ti.task_id, key="batch_name")
    if pushed:
        return str(pushed)
    returned = ti.xcom_pull(task_ids=ti.task_id)
    return returned.get("name") if isinstance(returned, dict) else None


def the_only_batch(control: EmulatorControl) -> dict[str, Any]:
    assert control.created_count() == 1
    (batch,) = control.batches()
    return batch


def status_polls(control: EmulatorControl, batch_name: str) -> int:
    return sum(
        1 for request in control.requests() if request["method"] == "GET" and request["path"].endswith(f"/{batch_name}")
    )


def api_calls(control: EmulatorControl, method: str, path_part: str) -> list[dict[str, Any]]:
    return [request for request in control.requests() if request["method"] == method and path_part in request["path"]]


def table_rows(database: Path, query: str) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(database)) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(query).fetchall()


def test_every_example_dag_file_imports_without_errors(example_dags_folder: Path) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(example_dags_folder))

    if COMMON_AI_INSTALLED:
        assert bag.import_errors == {}
        assert set(bag.dag_ids) == EXAMPLE_DAG_IDS
    else:
        import pydantic
        from packaging.version import Version

        assert Version(pydantic.VERSION) < Version("2.12"), "[common-ai] can be installed here: install it"
        assert [Path(path).name for path in bag.import_errors] == [f"{COMMON_AI_EXAMPLE}.py"]
        assert set(bag.dag_ids) == EXAMPLE_DAG_IDS - {COMMON_AI_EXAMPLE}


def test_nightly_dag_defers_and_loads_one_row_per_ticket_with_the_marked_one_failed(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, example_env: Path
) -> None:
    """Upload, submit, a deferred sensor, download and load: every ticket lands in SQLite, T-1010 as failed."""
    dag_run = run_example_dag("gemini_batch_nightly")

    assert dag_run.state == "success", task_states(dag_run)
    assert set(task_states(dag_run).values()) == {"success"}
    batch = the_only_batch(gemini_connection.control)
    assert batch["state"] == "BATCH_STATE_SUCCEEDED"
    assert "wait_for_batch" in deferred_tasks(dag_run)
    assert status_polls(gemini_connection.control, batch["name"]) >= MIN_STATUS_POLLS
    uploaded = [f.name for f in GeminiBatchHook().list_files() if (f.display_name or "").startswith("support-tickets")]
    assert uploaded == [], "the DAG deletes the input it uploaded"

    rows = {
        row["ticket_id"]: row
        for row in table_rows(example_env, "SELECT ticket_id, summary, status, tokens, run_id FROM ticket_summaries")
    }
    assert set(rows) == ticket_ids()
    assert {row["run_id"] for row in rows.values()} == {dag_run.run_id}
    assert {ticket for ticket, row in rows.items() if row["status"] == "failed"} == {"T-1010"}
    assert FAILURE_MARKER in rows["T-1010"]["summary"]
    assert rows["T-1010"]["tokens"] == 0
    succeeded = [row for ticket, row in rows.items() if ticket != "T-1010"]
    assert all(row["status"] == "succeeded" for row in succeeded)
    assert all(row["summary"].startswith(ECHO_PREFIX) and row["tokens"] > 0 for row in succeeded)


def test_embeddings_dag_defers_in_the_operator_and_stores_8_dimensional_vectors(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, example_env: Path
) -> None:
    """The submit operator itself defers (no sensor); every subject gets an 8-dimensional vector."""
    dag_run = run_example_dag("gemini_embeddings_batch")

    assert dag_run.state == "success", task_states(dag_run)
    batch = the_only_batch(gemini_connection.control)
    assert "embed_subjects" in deferred_tasks(dag_run)
    assert status_polls(gemini_connection.control, batch["name"]) >= MIN_STATUS_POLLS
    assert api_calls(gemini_connection.control, "POST", ":asyncBatchEmbedContent")
    assert not api_calls(gemini_connection.control, "POST", "/upload/")  # Inline: nothing uploaded.

    rows = table_rows(example_env, "SELECT ticket_id, dimensions, vector FROM subject_embeddings")
    assert {row["ticket_id"] for row in rows} == ticket_ids()
    assert {row["dimensions"] for row in rows} == {8}
    assert all(len(json.loads(row["vector"])) == 8 for row in rows)


def test_cleanup_dag_deletes_the_job_and_its_input_file_after_a_successful_run(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle
) -> None:
    """On success the results are downloaded first, then the job and the input file are deleted; nothing to cancel."""
    dag_run = run_example_dag("gemini_batch_cleanup")

    assert dag_run.state == "success", task_states(dag_run)
    assert set(task_states(dag_run).values()) == {"success"}
    control = gemini_connection.control
    batch = the_only_batch(control)
    assert "wait_for_batch" in deferred_tasks(dag_run)
    assert batch["state"] == "BATCH_STATE_SUCCEEDED"
    assert batch["deleted"] is True
    assert not api_calls(control, "POST", ":cancel")
    assert [call["status"] for call in api_calls(control, "DELETE", "/files/")] == [200]


@pytest.mark.parametrize(
    ("scenario", "final_state", "cancelled"),
    [("wait_timeout", "BATCH_STATE_CANCELLED", True), ("job_failed", "BATCH_STATE_FAILED", False)],
)
def test_cleanup_dag_cleans_up_and_still_fails_the_run_when_the_wait_fails(
    run_example_dag: RunExampleDag,
    gemini_connection: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    final_state: str,
    cancelled: bool,
) -> None:
    """A wait that times out or a job that fails still gets cleaned up, and the run is still marked failed.

    On a timeout the job is still RUNNING, so ``cancel_if_running`` cancels it; a FAILED job is only deleted.
    """
    control = gemini_connection.control
    if scenario == "wait_timeout":
        control.configure(running_seconds=60)
        monkeypatch.setenv("GEMINI_WAIT_TIMEOUT", "1")
    else:
        control.configure(outcome="FAILED", outcome_message="The model is overloaded.")

    dag_run = run_example_dag("gemini_batch_cleanup")

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert states["wait_for_batch"] == "failed"
    assert states["download_results"] == "upstream_failed"
    assert {states[task] for task in ("cancel_if_running", "delete_batch", "delete_input_file")} == {"success"}
    batch = the_only_batch(control)
    assert batch["state"] == final_state
    assert batch["deleted"] is True
    assert bool(api_calls(control, "POST", ":cancel")) is cancelled
    assert [call["status"] for call in api_calls(control, "DELETE", "/files/")] == [200]


@pytest.mark.skipif(not COMMON_AI_INSTALLED, reason="the [common-ai] extra is not installed (see COMMON_AI_INSTALLED)")
def test_common_ai_dag_triages_every_ticket_on_gemini_with_the_marked_one_errored(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, example_env: Path
) -> None:
    """``@task.llm_batch`` on ``google:gemini-2.5-flash``: one job, a row per ticket, T-1010 as an errored row."""
    gemini_connection.control.configure(pending_seconds=0, running_seconds=0)  # common-ai polls every 30 s at least
    dag_run = run_example_dag(COMMON_AI_EXAMPLE)

    assert dag_run.state == "success", task_states(dag_run)
    batch = the_only_batch(gemini_connection.control)
    job = GeminiBatchHook().get_batch(batch["name"])
    ti = dag_run.get_task_instances()[0]
    manifest = ti.xcom_pull(task_ids="triage_tickets")
    counts = ti.xcom_pull(task_ids="report")
    tickets = ticket_ids()
    assert counts == manifest["counts"]
    assert manifest["request_count"] == job.batch_stats.request_count == len(tickets)
    assert counts["succeeded"] == job.batch_stats.successful_request_count == len(tickets) - 1
    assert counts["errored"] == job.batch_stats.failed_request_count == 1
    with (EXAMPLE_DAGS_FOLDER / "data" / "support_tickets.csv").open(newline="", encoding="utf-8") as stream:
        order = [row["ticket_id"] for row in csv.DictReader(stream)]
    assert manifest["result_uri"].startswith(str(example_env.parent / "results"))  # $GEMINI_RESULTS_DIR
    rows = [json.loads(line) for line in Path(manifest["result_uri"]).read_text().splitlines()]
    errored = {order[row["index"]] for row in rows if row["status"] == "error"}
    assert errored == {"T-1010"}
    assert all(row["output"].startswith(ECHO_PREFIX) for row in rows if row["status"] == "success")


def test_sharded_dag_splits_fans_out_waits_deferred_and_merges_every_key_once(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, example_env: Path
) -> None:
    """12 tickets in shards of 2: six mapped submits, each deferred and created once, one merged results set."""
    control = gemini_connection.control
    control.configure(max_concurrent_jobs=1, quota_retry_seconds=0.3)
    # Another job holds the only slot until a shard's create is refused: that shard waits out quota, deferred.
    blocker = GeminiBatchHook().create_batch("gemini-2.5-flash", requests=[{"key": "x", "request": PROMPT}])
    control.set_state(blocker.name, "RUNNING")

    def free_the_slot_after_a_refusal() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(call["status"] == 429 for call in control.requests()):
            time.sleep(0.1)
        control.set_state(blocker.name, "SUCCEEDED")

    threading.Thread(target=free_the_slot_after_a_refusal, daemon=True).start()

    dag_run = run_example_dag("gemini_batch_sharded")

    assert dag_run.state == "success", task_states(dag_run)
    submits = [ti for ti in dag_run.get_task_instances() if ti.task_id == "submit_shard"]
    assert sorted(ti.map_index for ti in submits) == list(range(6))
    jobs = [job for job in control.batches() if job["name"] != blocker.name]
    assert len(jobs) == 6, "one job per shard, created once"
    assert len({job["displayName"] for job in jobs}) == 6, "each mapped task has its own durable key"
    refused = [call for call in api_calls(control, "POST", ":batchGenerateContent") if call["status"] == 429]
    assert refused, "the concurrent-job limit made some shards wait"
    manifest_path = next((example_env.parent / "results" / "sharded").glob("*/results/manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    assert (manifest["shard_count"], manifest["result_count"], manifest["missing_count"]) == (6, 12, 0)
    keys = [
        json.loads(line)["key"]
        for shard in manifest["shards"]
        for line in Path(shard["path"]).read_bytes().splitlines()
    ]
    assert sorted(keys) == sorted(ticket_ids())
