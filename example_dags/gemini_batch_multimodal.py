"""Classify a folder of photos in one batch job: upload them, reference them in requests, clean up.

Requests carry images by reference: each photo is uploaded to the Files API once, and a request part
``{"fileData": {"fileUri": ..., "mimeType": ...}}`` points at it. Uploaded files live 48 hours, so
before the job is created the submit task checks every referenced file (it exists, is ACTIVE, and
outlives the time a job may wait, ``[gemini_batch] media_expiry_margin_hours``) and names the request
of any that is not; nothing is created then. The uploads are deleted afterwards, whatever happened.

- ``sample_photos``: the folder to classify (``params.photos_dir``). For the demo it writes three
  small PNGs there when the folder has none; point it at your own photos instead.
- ``upload_photos``: ``GeminiUploadMediaOperator`` uploads them in parallel; its XCom lists each
  file's ``name``, ``uri`` and ``mime_type``.
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
import struct
import zlib
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
SAMPLE_COLOURS = {"red.png": b"\xff\x00\x00", "green.png": b"\x00\xff\x00", "blue.png": b"\x00\x00\xff"}


@dag(
    dag_id="gemini_batch_multimodal",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "photos_dir": Param(
            os.path.join(RESULTS_DIR, "sample-photos"), type="string", description="The folder of photos to classify."
        ),
        "results_dir": Param(RESULTS_DIR, type="string", description="Where the results JSONL goes."),
    },
    tags=["gemini", "batch", "multimodal", "example"],
    doc_md=__doc__,
)
def gemini_batch_multimodal() -> None:
    @task
    def sample_photos(params: dict[str, Any]) -> str:
        """Return the photos folder; for the demo, fill an empty one with three small PNGs."""
        folder = params["photos_dir"]
        os.makedirs(folder, exist_ok=True)
        if not any(not name.startswith(".") for name in os.listdir(folder)):
            for name, colour in SAMPLE_COLOURS.items():
                with open(os.path.join(folder, name), "wb") as out:
                    out.write(_png(colour))
        return str(folder)

    upload = GeminiUploadMediaOperator(task_id="upload_photos", source=sample_photos(), max_parallel=4)

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


def _png(colour: bytes, side: int = 8) -> bytes:
    """A ``side`` x ``side`` PNG of one colour, made with zlib and struct."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = (b"\x00" + colour * side) * side
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


multimodal_dag = gemini_batch_multimodal()
