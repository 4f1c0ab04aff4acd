"""Classify a folder of photos in one batch job: upload them, reference them in requests, clean up.

Requests carry images by reference: each photo is uploaded to the Files API once, and a request part
``{"fileData": {"fileUri": ..., "mimeType": ...}}`` points at it. Uploaded files live 48 hours, so
before the job is created the submit task checks every referenced file (it exists, is ACTIVE, and
outlives the time a job may wait, ``[gemini_batch] media_expiry_margin_hours``) and names the request
of any that is not; nothing is created then. The uploads are deleted afterwards, whatever happened.

- ``upload_photos``: ``GeminiUploadMediaOperator`` uploads the photos of ``params.photos_dir`` (three
  small sample PNGs in ``example_dags/data/photos``; point it at your own folder, local or ``s3://``)
  in parallel; its XCom lists each file's ``name``, ``uri`` and ``mime_type``.
- ``build_requests``: one classification request per photo, referencing it with ``fileData``.
- ``classify``: submits (checking the references first) and waits in the triggerer.
- ``download_results``: the labels, one line per photo.
- ``delete_photos`` and ``delete_batch``: teardowns (``all_done`` once their setup ran).

Configuration (all optional): connection ``gemini_default``; ``GEMINI_MODEL`` (default
``gemini-2.5-flash``); ``GEMINI_POLL_INTERVAL`` seconds (default 60); Variable ``gemini_results_dir``
or ``$GEMINI_RESULTS_DIR`` (default ``$AIRFLOW_HOME/gemini_results``).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_gemini_batch.operators import (
    GeminiDeleteBatchOperator,
    GeminiDeleteMediaOperator,
    GeminiDownloadResultsOperator,
    GeminiSubmitBatchOperator,
    GeminiUploadMediaOperator,
)

AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
RESULTS_DIR = os.environ.get("GEMINI_RESULTS_DIR", os.path.join(AIRFLOW_HOME, "gemini_results"))
MODEL = os.environ.get("GEMINI_MODEL", "gemini-2.5-flash")
POLL_INTERVAL = float(os.environ.get("GEMINI_POLL_INTERVAL", "60"))
LABELS = ("cat", "dog", "document", "other")
SAMPLE_PHOTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "photos")


@dag(
    dag_id="gemini_batch_multimodal",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "photos_dir": Param(SAMPLE_PHOTOS, type="string", description="The folder of photos to classify."),
        "results_dir": Param(RESULTS_DIR, type="string", description="Where the results JSONL goes."),
    },
    tags=["gemini", "batch", "multimodal", "example"],
    doc_md=__doc__,
)
def gemini_batch_multimodal() -> None:
    upload = GeminiUploadMediaOperator(task_id="upload_photos", source="{{ params.photos_dir }}", max_parallel=4)

    @task
    def build_requests(photos: list[dict[str, str]]) -> list[dict[str, Any]]:
        """One request per photo: the question, and the photo by reference."""
        question = f"Classify this photo as one of: {', '.join(LABELS)}. Answer with the label only."
        return [
            {
                "key": os.path.basename(photo["source"]),
                "request": {
                    "contents": [
                        {
                            "role": "user",
                            "parts": [
                                {"text": question},
                                {"fileData": {"fileUri": photo["uri"], "mimeType": photo["mime_type"]}},
                            ],
                        }
                    ]
                },
            }
            for photo in photos
        ]

    classify = GeminiSubmitBatchOperator(
        task_id="classify",
        model=MODEL,
        requests=build_requests(upload.output),
        display_name="photo-labels-{{ run_id }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
    download = GeminiDownloadResultsOperator(
        task_id="download_results",
        batch_name=classify.output,
        destination="{{ var.value.get('gemini_results_dir', params.results_dir) }}",
    )
    delete_batch = GeminiDeleteBatchOperator(task_id="delete_batch", batch_name=classify.output)
    delete_photos = GeminiDeleteMediaOperator(task_id="delete_photos", files=upload.output)

    download >> delete_batch.as_teardown(setups=classify)
    delete_batch >> delete_photos.as_teardown(setups=upload)


multimodal_dag = gemini_batch_multimodal()
