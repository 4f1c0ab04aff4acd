"""Generate product pictures in one batch job and get them as a folder of PNG files.

An image model (``gemini-2.5-flash-image``) asked with ``responseModalities`` ``["TEXT", "IMAGE"]``
answers each request with a short text and an image, as base64 inside the results. The download
task's ``media_destination`` writes every image as a file, ``{key}-{n}.png``, decoding as the results
stream by, and each results line points at its file instead of carrying megabytes of base64; the
manifest counts the images and their bytes. The images appear with the results file, never
half-written.

- ``build_requests``: one request per product description.
- ``generate_images``: submits the job and waits for it in the triggerer (deferrable).
- ``download_images``: writes ``results.jsonl`` and the ``png/`` folder next to it.
- ``report``: reads the manifest (the XCom) and lists the files.
- ``delete_batch``: a teardown that deletes the job record however the run went.

Configuration (all optional): connection ``gemini_default``; ``GEMINI_IMAGE_MODEL`` (default
``gemini-2.5-flash-image``); ``GEMINI_POLL_INTERVAL`` seconds (default 60); Variable
``gemini_results_dir`` or ``$GEMINI_RESULTS_DIR`` (default ``$AIRFLOW_HOME/gemini_results``).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_gemini_batch.operators import (
    GeminiDeleteBatchOperator,
    GeminiDownloadResultsOperator,
    GeminiSubmitBatchOperator,
)

AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
MODEL = os.environ.get("GEMINI_IMAGE_MODEL", "gemini-2.5-flash-image")
POLL_INTERVAL = float(os.environ.get("GEMINI_POLL_INTERVAL", "60"))
PRODUCTS = {
    "mug": "A white ceramic coffee mug with a small blue fox printed on it, on a wooden table.",
    "lamp": "A brass desk lamp with a green glass shade, photographed at dusk.",
    "backpack": "A waterproof orange hiking backpack leaning against a granite boulder.",
}
RESULTS = "{{ var.value.get('gemini_results_dir', params.results_dir) }}/images/{{ run_id | replace(':', '_') }}"


@dag(
    dag_id="gemini_batch_images",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "results_dir": Param(
            os.environ.get("GEMINI_RESULTS_DIR", os.path.join(AIRFLOW_HOME, "gemini_results")),
            type="string",
            description="Where results and images go (the Variable gemini_results_dir wins when set).",
        )
    },
    tags=["gemini", "batch", "images", "example"],
    doc_md=__doc__,
)
def gemini_batch_images() -> None:
    @task
    def build_requests() -> list[dict[str, Any]]:
        """One request per product: a catalogue picture and a one-line caption."""
        return [
            {
                "key": key,
                "request": {
                    "contents": [{"role": "user", "parts": [{"text": f"Catalogue photo and caption: {text}"}]}],
                    "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
                },
            }
            for key, text in PRODUCTS.items()
        ]

    submit = GeminiSubmitBatchOperator(
        task_id="generate_images",
        model=MODEL,
        requests=build_requests(),
        display_name="catalogue-images-{{ run_id }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
    download = GeminiDownloadResultsOperator(
        task_id="download_images",
        batch_name=submit.output,
        destination=RESULTS + "/results.jsonl",
        media_destination=RESULTS + "/png",
    )

    @task
    def report(manifest: dict[str, Any]) -> int:
        """Say where the pictures are: the manifest counts them, the results lines name them."""
        import json

        with open(manifest["path"], encoding="utf-8") as lines:
            for line in map(json.loads, lines):
                print(line["key"], line.get("text"), line.get("media", []))
        print(f"{manifest['media_count']} images, {manifest['media_bytes']} bytes")
        return int(manifest["media_count"])

    delete_batch = GeminiDeleteBatchOperator(task_id="delete_batch", batch_name=submit.output)

    report(download.output) >> delete_batch.as_teardown(setups=submit)


images_dag = gemini_batch_images()
