"""``gemini_batch_cached_document`` runs under ``dag.test()`` against the emulator: cache, ask, download, clean up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle

from .conftest import RunExampleDag
from .test_example_dags import api_calls, deferred_tasks, task_states, the_only_batch, ticket_ids

pytestmark = pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated")


def test_every_request_reads_the_cache_the_manifest_prices_it_and_the_cache_is_deleted(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, example_env: Path
) -> None:
    dag_run = run_example_dag("gemini_batch_cached_document")

    assert dag_run.state == "success", task_states(dag_run)
    assert set(task_states(dag_run).values()) == {"success"}
    assert "submit_questions" in deferred_tasks(dag_run)
    control = gemini_connection.control
    assert the_only_batch(control)["state"] == "BATCH_STATE_SUCCEEDED"

    cache_name = dag_run.get_task_instance("cache_handbook").xcom_pull(task_ids="cache_handbook")
    cache_tokens = dag_run.get_task_instance("cache_handbook").xcom_pull(
        task_ids="cache_handbook", key="cached_content"
    )["token_count"]
    manifest = dag_run.get_task_instance("download_answers").xcom_pull(task_ids="download_answers")
    lines = [json.loads(line) for line in Path(manifest["path"]).read_text().splitlines()]
    assert {line["key"] for line in lines} == ticket_ids()
    answered = [line for line in lines if "response" in line]
    assert answered
    assert {line["usage"]["cachedContentTokenCount"] for line in answered} == {cache_tokens}
    assert manifest["tokens"]["cached"] == cache_tokens * len(answered)
    assert manifest["cost"]["estimate"] is True
    assert manifest["cost"]["saved"] > 0

    assert [call["status"] for call in api_calls(control, "DELETE", "/cachedContents/")] == [200]
    assert cache_name.endswith(api_calls(control, "DELETE", "/cachedContents/")[0]["path"].rsplit("/", 1)[-1])


def test_the_cache_is_deleted_even_when_the_job_fails(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle
) -> None:
    gemini_connection.control.configure(outcome="FAILED", outcome_message="The model is overloaded.")

    dag_run = run_example_dag("gemini_batch_cached_document")

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert states["submit_questions"] == "failed"
    assert states["download_answers"] == "upstream_failed"
    assert states["delete_cache"] == "success"
    assert [call["status"] for call in api_calls(gemini_connection.control, "DELETE", "/cachedContents/")] == [200]
