"""The "Gemini batch" extra link: every operator on a job links to the job's page, as Airflow stores and shows it.

A real ``dag.test()`` against the emulator: Airflow computes each task's links when the task ends
and keeps them in XCom, where its UI reads them; the test reads them there.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.links import GeminiBatchLink
from airflow_provider_gemini_batch.operators import (
    GeminiCancelBatchOperator,
    GeminiDownloadResultsOperator,
    GeminiGetBatchOperator,
    GeminiSubmitBatchOperator,
    GeminiSubmitEmbeddingsBatchOperator,
)
from airflow_provider_gemini_batch.sensors import GeminiBatchSensor

DAG_ID = "gemini_links_test"
TASKS = ("submit", "wait", "get", "download", "cancel")

DAG_FILE = """
import pendulum
from airflow.sdk import DAG

from airflow_provider_gemini_batch.operators import (
    GeminiCancelBatchOperator,
    GeminiDownloadResultsOperator,
    GeminiGetBatchOperator,
    GeminiSubmitBatchOperator,
)
from airflow_provider_gemini_batch.sensors import GeminiBatchSensor

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
    submit = GeminiSubmitBatchOperator(
        task_id="submit",
        model="gemini-2.5-flash",
        requests=[{{"key": "a", "request": {{"contents": [{{"parts": [{{"text": "hi"}}]}}]}}}}],
        wait_for_completion=False,
    )
    wait = GeminiBatchSensor(task_id="wait", batch_name=submit.output, deferrable=False, poke_interval=0.1)
    get = GeminiGetBatchOperator(task_id="get", batch_name=submit.output)
    download = GeminiDownloadResultsOperator(task_id="download", batch_name=submit.output, destination={out!r})
    cancel = GeminiCancelBatchOperator(task_id="cancel", batch_name=submit.output)
    wait >> get >> download >> cancel
"""


@pytest.mark.parametrize(
    "operator",
    [
        GeminiSubmitBatchOperator,
        GeminiSubmitEmbeddingsBatchOperator,
        GeminiBatchSensor,
        GeminiGetBatchOperator,
        GeminiCancelBatchOperator,
        GeminiDownloadResultsOperator,
    ],
)
def test_each_operator_on_a_job_has_the_link(operator: type) -> None:
    assert any(isinstance(link, GeminiBatchLink) for link in operator.operator_extra_links)
    assert GeminiBatchLink().name == "Gemini batch"


def test_the_provider_registers_the_link() -> None:
    from airflow_provider_gemini_batch.get_provider_info import get_provider_info

    assert get_provider_info()["extra-links"] == ["airflow_provider_gemini_batch.links.GeminiBatchLink"]


def test_under_a_base_path_the_link_points_under_it_and_escapes_its_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/airflow/")
    operator = GeminiGetBatchOperator(task_id="get", batch_name="batches/abc123", gemini_conn_id="gemini prod&1")

    link = GeminiBatchLink().get_link(operator, ti_key=None)

    assert link == "/airflow/gemini-batch/batches/abc123?conn_id=gemini%20prod%261"


@pytest.mark.slow
def test_every_task_of_a_run_links_to_its_jobs_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gemini_connection: EmulatorHandle
) -> None:
    from airflow import settings
    from airflow.models.xcom import XComModel
    from airflow.utils import db
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(textwrap.dedent(DAG_FILE.format(dag_id=DAG_ID, out=str(tmp_path / "out"))))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(dags))
    db.initdb()
    bag = DagBag(str(dags))
    assert not bag.import_errors, bag.import_errors

    run = bag.dags[DAG_ID].test()

    assert str(run.state) in ("success", "DagRunState.SUCCESS"), run.state
    (job,) = gemini_connection.control.batches()
    batch_id = job["name"].removeprefix("batches/")
    with create_session() as session:
        stored = session.execute(
            select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == DAG_ID, XComModel.run_id == run.run_id, XComModel.key == GeminiBatchLink().xcom_key
            )
        ).all()
    links = {task_id: str(value).strip('"') for task_id, value in stored}
    assert links == {task: f"/gemini-batch/batches/{batch_id}?conn_id=gemini_default" for task in TASKS}
