"""A location on an object store whose filesystem is not installed fails when the DAG is built, naming the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_gemini_batch.exceptions import GeminiBatchConfigError
from airflow_provider_gemini_batch.operators import (
    GeminiDownloadResultsOperator,
    GeminiSubmitBatchOperator,
    GeminiUploadFileOperator,
)
from airflow_provider_gemini_batch.storage import require_filesystem


@pytest.mark.parametrize(
    ("location", "package"),
    [
        ("s3://bucket/results/", "apache-airflow-providers-amazon"),
        ("gs://bucket/results/", "apache-airflow-providers-google"),
        ("abfs://container/results/", "apache-airflow-providers-microsoft-azure"),
    ],
)
def test_a_missing_filesystem_names_the_package(location: str, package: str) -> None:
    with pytest.raises(GeminiBatchConfigError, match=package):
        require_filesystem(location, what="destination")


@pytest.mark.parametrize("location", ["/tmp/results", "file:///tmp/results.jsonl", "{{ var.value.bucket }}"])
def test_local_paths_and_templates_pass(location: str) -> None:
    require_filesystem(location)


def test_a_templated_location_is_checked_when_its_scheme_is_written_out() -> None:
    with pytest.raises(GeminiBatchConfigError, match="apache-airflow-providers-amazon"):
        require_filesystem("s3://my-bucket/gemini/{{ ds }}/")


def test_a_download_to_an_uninstalled_store_fails_when_the_dag_is_built() -> None:
    with pytest.raises(GeminiBatchConfigError, match="apache-airflow-providers-google"):
        GeminiDownloadResultsOperator(task_id="download", batch_name="batches/b1", destination="gs://b/{{ ds }}/")


def test_an_upload_from_an_uninstalled_store_fails_when_the_dag_is_built(tmp_path: Path) -> None:
    with pytest.raises(GeminiBatchConfigError, match="apache-airflow-providers-amazon"):
        GeminiUploadFileOperator(task_id="upload", source="s3://bucket/requests.jsonl")
    with pytest.raises(GeminiBatchConfigError, match="apache-airflow-providers-amazon"):
        GeminiSubmitBatchOperator(task_id="submit", model="gemini-2.5-flash", input_path="s3://bucket/requests.jsonl")
