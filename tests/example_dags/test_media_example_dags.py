"""The media example DAGs under ``dag.test()``: images to PNG files, photos classified by reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook

from .conftest import RunExampleDag
from .test_example_dags import api_calls, deferred_tasks, task_states, the_only_batch

pytestmark = pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated")


def test_images_dag_writes_one_png_per_product_and_lines_that_point_at_them(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, example_env: Path
) -> None:
    dag_run = run_example_dag("gemini_batch_images")

    assert dag_run.state == "success", task_states(dag_run)
    assert set(task_states(dag_run).values()) == {"success"}
    assert "generate_images" in deferred_tasks(dag_run)
    batch = the_only_batch(gemini_connection.control)
    assert batch["deleted"] is True
    (folder,) = (example_env.parent / "results" / "images").iterdir()
    pngs = sorted((folder / "png").iterdir())
    assert [png.name for png in pngs] == ["backpack-0.png", "lamp-0.png", "mug-0.png"]
    assert all(png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for png in pngs)
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert sorted(path for line in lines for path in line["media"]) == [str(png) for png in pngs]
    assert all('"data"' not in json.dumps(line) for line in lines), "no base64 left in the results"


def test_multimodal_dag_classifies_uploaded_photos_by_reference_and_deletes_them(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, example_env: Path
) -> None:
    dag_run = run_example_dag("gemini_batch_multimodal")

    assert dag_run.state == "success", task_states(dag_run)
    assert set(task_states(dag_run).values()) == {"success"}
    control = gemini_connection.control
    batch = the_only_batch(control)
    assert batch["deleted"] is True
    uploads = api_calls(control, "POST", "/upload/")
    assert len([call for call in uploads if call["status"] == 200]) >= 3
    checked = [call for call in api_calls(control, "GET", "/files/") if call["status"] == 200]
    assert len(checked) >= 3, "every referenced photo looked up before the job"
    assert list(GeminiBatchHook().list_files()) == [], "the photos are deleted after the run"
    (results,) = (example_env.parent / "results").glob("*.jsonl")
    keys = sorted(json.loads(line)["key"] for line in results.read_text().splitlines())
    assert keys == ["blue.png", "green.png", "red.png"]


def test_multimodal_dag_creates_no_job_when_the_photos_would_expire_before_it_runs(
    run_example_dag: RunExampleDag, gemini_connection: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__GEMINI_BATCH__MEDIA_EXPIRY_MARGIN_HOURS", "49")  # every fresh upload expires too soon

    dag_run = run_example_dag("gemini_batch_multimodal")

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert states["classify"] == "failed"
    assert states["delete_photos"] == "success", "cleanup runs however the run went"
    assert gemini_connection.control.created_count() == 0
    assert list(GeminiBatchHook().list_files()) == []
