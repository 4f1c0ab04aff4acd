"""Leave nothing behind: cancel and delete the batch job and its input file, whatever happened.

A batch job keeps running (and billing) after the task that waits for it fails or times out, and its
input file stays stored for 48 hours. This DAG drafts first replies to support tickets and pairs every
remote resource it creates with a cleanup task:

- ``upload_requests`` (creates the input file)  ->  ``delete_input_file``
- ``submit_batch`` (creates the job)             ->  ``cancel_if_running`` then ``delete_batch``

The cleanup tasks are Airflow *teardown* tasks. A teardown's trigger rule is ``all_done`` with one
refinement (``ALL_DONE_SETUP_SUCCESS``): it runs once everything upstream is done, successful or not,
but only when its setup task succeeded, so there is always a real batch or file name to clean up. And
unlike a plain ``trigger_rule="all_done"`` leaf, a teardown does not decide the run's state: when the
wait fails or times out the run still fails, after cleaning up.

- ``cancel_if_running`` (``GeminiCancelBatchOperator``) cancels the job only if it is still PENDING or
  RUNNING, e.g. after ``wait_for_batch`` hit its timeout, and waits until it is terminal; a finished
  job is left as is.
- ``delete_batch`` (``GeminiDeleteBatchOperator``) then deletes the job record.
- ``delete_input_file`` (``GeminiDeleteFileOperator``) deletes the uploaded JSONL once the job no
  longer needs it. Both deletes succeed when the resource is already gone.

Configuration (all optional): connection ``gemini_default``; ``GEMINI_MODEL`` (default
``gemini-2.5-flash``); ``GEMINI_POLL_INTERVAL`` seconds (default 60); ``GEMINI_WAIT_TIMEOUT`` seconds
(default 86400, a day); Variable ``gemini_results_dir`` or ``$GEMINI_RESULTS_DIR`` (default
``$AIRFLOW_HOME/gemini_results``).
"""

from __future__ import annotations

import csv
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_gemini_batch.operators import (
    GeminiCancelBatchOperator,
    GeminiDeleteBatchOperator,
    GeminiDeleteFileOperator,
    GeminiDownloadResultsOperator,
    GeminiSubmitBatchOperator,
    GeminiUploadFileOperator,
)
from airflow_provider_gemini_batch.sensors import GeminiBatchSensor

TICKETS_CSV = Path(__file__).parent / "data" / "support_tickets.csv"
AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
MODEL = os.environ.get("GEMINI_MODEL", "gemini-2.5-flash")
POLL_INTERVAL = float(os.environ.get("GEMINI_POLL_INTERVAL", "60"))
# The Batch API's own target is 24 h; past that the results are not worth waiting for here.
WAIT_TIMEOUT = float(os.environ.get("GEMINI_WAIT_TIMEOUT", str(24 * 60 * 60)))


@dag(
    dag_id="gemini_batch_cleanup",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "results_dir": Param(
            os.environ.get("GEMINI_RESULTS_DIR", os.path.join(AIRFLOW_HOME, "gemini_results")),
            type="string",
            description="Where the results JSONL goes (the Variable gemini_results_dir wins when set).",
        )
    },
    tags=["gemini", "batch", "cleanup", "example"],
    doc_md=__doc__,
)
def gemini_batch_cleanup() -> None:
    @task
    def build_requests() -> list[dict[str, Any]]:
        """One request per ticket: draft a short first reply to the customer."""
        with TICKETS_CSV.open(newline="", encoding="utf-8") as stream:
            return [
                {
                    "key": ticket["ticket_id"],
                    "request": {
                        "contents": [
                            {
                                "role": "user",
                                "parts": [
                                    {
                                        "text": "Draft a friendly two-sentence first reply to this support ticket.\n\n"
                                        f"Subject: {ticket['subject']}\n\n{ticket['body']}"
                                    }
                                ],
                            }
                        ],
                        "generationConfig": {"temperature": 0.7},
                    },
                }
                for ticket in csv.DictReader(stream)
            ]

    upload = GeminiUploadFileOperator(
        task_id="upload_requests", requests=build_requests(), display_name="first-replies-{{ run_id }}"
    )
    submit = GeminiSubmitBatchOperator(
        task_id="submit_batch",
        model=MODEL,
        input_file=upload.output,
        display_name="first-replies-{{ run_id }}",
        wait_for_completion=False,
    )
    wait = GeminiBatchSensor(
        task_id="wait_for_batch",
        batch_name=submit.output,
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=WAIT_TIMEOUT,
    )
    download = GeminiDownloadResultsOperator(
        task_id="download_results",
        batch_name=submit.output,
        destination="{{ var.value.get('gemini_results_dir', params.results_dir) }}",
    )

    cancel = GeminiCancelBatchOperator(
        task_id="cancel_if_running",
        batch_name=submit.output,
        wait_for_termination=True,
        poll_interval=min(POLL_INTERVAL, 10.0),
    )
    delete_batch = GeminiDeleteBatchOperator(task_id="delete_batch", batch_name=submit.output, cancel_if_running=False)
    delete_file = GeminiDeleteFileOperator(task_id="delete_input_file", file_name=upload.output)

    submit >> wait >> download
    # Cleanup waits for the main path, then runs however it ended (teardown = all_done, given its setup ran).
    download >> cancel.as_teardown(setups=submit) >> delete_batch.as_teardown(setups=submit)
    delete_batch >> delete_file.as_teardown(setups=upload)


cleanup_dag = gemini_batch_cleanup()
