"""Nightly support-ticket triage with the Gemini Batch API: the whole file-based flow, end to end.

What it shows:

1. ``extract_tickets`` reads ``data/support_tickets.csv`` (a stand-in for your warehouse query).
2. ``build_requests`` turns each ticket into one ``GenerateContentRequest`` keyed by ticket id, with a
   ``systemInstruction`` and a low ``temperature``: a summarise-and-classify prompt.
3. ``GeminiUploadFileOperator`` validates the requests and uploads them as a JSONL file.
4. ``GeminiSubmitBatchOperator`` creates the batch job and returns at once (``wait_for_completion=False``).
5. ``GeminiBatchSensor`` waits for the job in the triggerer (``deferrable=True``): no worker slot is held
   for the minutes or hours a batch takes.
6. ``GeminiDownloadResultsOperator`` streams the results to a JSONL file; only a small manifest goes to XCom.
7. ``load_summaries`` streams that file line by line into the SQLite table ``ticket_summaries``.
8. ``delete_input_file`` deletes the uploaded input with ``trigger_rule="all_done"``: however the run ends.

Partial failure: a batch job can SUCCEED while single requests fail. Ticket ``T-1010`` carries the marker
``[[fail]]``, which the emulator answers with a per-request error (the real model just answers it). The sensor
accepts up to ``max_failed_ratio`` of failed requests; failed ones are loaded with ``status = 'failed'`` and the
error message as the summary, so nothing is silently dropped.

Configuration (all optional):

- connection ``gemini_default``: type ``gemini``, the API key in the password; a host only for the emulator.
- ``GEMINI_MODEL`` (default ``gemini-2.5-flash``), ``GEMINI_POLL_INTERVAL`` seconds (default 60).
- results folder: Variable ``gemini_results_dir``, else the ``results_dir`` param, whose default is
  ``$GEMINI_RESULTS_DIR`` or ``$AIRFLOW_HOME/gemini_results`` (a local path or an object-storage URI).
- ``GEMINI_DEMO_DB``: the SQLite file (default ``$AIRFLOW_HOME/gemini_demo.db``).
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from airflow.sdk import ObjectStoragePath, Param, dag, task

from airflow_provider_gemini_batch.operators import (
    GeminiDeleteFileOperator,
    GeminiDownloadResultsOperator,
    GeminiSubmitBatchOperator,
    GeminiUploadFileOperator,
)
from airflow_provider_gemini_batch.sensors import GeminiBatchSensor

TICKETS_CSV = Path(__file__).parent / "data" / "support_tickets.csv"
AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
MODEL = os.environ.get("GEMINI_MODEL", "gemini-2.5-flash")
# A batch takes minutes to hours: polling every minute is plenty. Tests and the demo lower it.
POLL_INTERVAL = float(os.environ.get("GEMINI_POLL_INTERVAL", "60"))

SYSTEM_INSTRUCTION = (
    "You triage customer support tickets. Classify the ticket as exactly one of: billing, account, bug, "
    "feature_request, privacy, cancellation, feedback, other. Reply with one line: "
    "'<category>: <summary of at most 25 words>'."
)


@dag(
    dag_id="gemini_batch_nightly",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "results_dir": Param(
            os.environ.get("GEMINI_RESULTS_DIR", os.path.join(AIRFLOW_HOME, "gemini_results")),
            type="string",
            description="Where the results JSONL goes (the Variable gemini_results_dir wins when set).",
        )
    },
    tags=["gemini", "batch", "example"],
    doc_md=__doc__,
)
def gemini_batch_nightly() -> None:
    @task
    def extract_tickets() -> list[dict[str, str]]:
        """Read the day's tickets (a small CSV here; a warehouse query in real life)."""
        with TICKETS_CSV.open(newline="", encoding="utf-8") as stream:
            return list(csv.DictReader(stream))

    @task
    def build_requests(tickets: list[dict[str, str]]) -> list[dict[str, Any]]:
        """One GenerateContentRequest per ticket, keyed by ticket id so results can be matched back."""
        return [
            {
                "key": ticket["ticket_id"],
                "request": {
                    "systemInstruction": {"parts": [{"text": SYSTEM_INSTRUCTION}]},
                    "contents": [
                        {
                            "role": "user",
                            "parts": [
                                {"text": f"{ticket['subject']}\n\n{ticket['body']}\n\n(from {ticket['customer']})"}
                            ],
                        }
                    ],
                    "generationConfig": {"temperature": 0.2},
                },
            }
            for ticket in tickets
        ]

    upload = GeminiUploadFileOperator(
        task_id="upload_requests",
        requests=build_requests(extract_tickets()),
        display_name="support-tickets-{{ run_id }}",
    )
    submit = GeminiSubmitBatchOperator(
        task_id="submit_batch",
        model=MODEL,
        input_file=upload.output,
        display_name="support-tickets-{{ run_id }}",
        # Return as soon as the job exists and let the sensor wait: a retry of the wait never resubmits.
        # (With wait_for_completion=True, deferrable=True would make this task wait in the triggerer itself.)
        wait_for_completion=False,
        deferrable=True,
    )
    wait = GeminiBatchSensor(
        task_id="wait_for_batch",
        batch_name=submit.output,
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        # A few unanswerable tickets are fine; a quarter of them failing means something is wrong.
        max_failed_ratio=0.25,
    )
    download = GeminiDownloadResultsOperator(
        task_id="download_results",
        batch_name=submit.output,
        destination="{{ var.value.get('gemini_results_dir', params.results_dir) }}",
    )

    @task
    def load_summaries(manifest: dict[str, Any], run_id: str | None = None) -> dict[str, int]:
        """Stream the normalized results into ``ticket_summaries``; a re-run of the same run replaces its rows."""
        database = os.environ.get("GEMINI_DEMO_DB", os.path.join(AIRFLOW_HOME, "gemini_demo.db"))
        os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
        with closing(sqlite3.connect(database)) as connection, connection, _open_results(manifest["path"]) as lines:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS ticket_summaries ("
                " ticket_id TEXT NOT NULL, summary TEXT, status TEXT NOT NULL, tokens INTEGER NOT NULL,"
                " run_id TEXT NOT NULL, PRIMARY KEY (run_id, ticket_id))"
            )
            connection.executemany(
                "INSERT OR REPLACE INTO ticket_summaries (ticket_id, summary, status, tokens, run_id)"
                " VALUES (?, ?, ?, ?, ?)",
                (_summary_row(json.loads(line), run_id or "") for line in lines if line.strip()),
            )
        return {"succeeded": manifest["succeeded_count"], "failed": manifest["failed_count"]}

    # The uploaded input is deleted however the run ends (files would expire after 48 h anyway).
    delete_input = GeminiDeleteFileOperator(
        task_id="delete_input_file", file_name=upload.output, trigger_rule="all_done"
    )

    upload >> submit >> wait >> download >> delete_input
    load_summaries(download.output)


def _open_results(path: str) -> IO[bytes]:
    """Open the results file, local or on object storage (``s3://...``), for streaming."""
    stream: IO[bytes] = ObjectStoragePath(path).open("rb") if "://" in path else open(path, "rb")  # noqa: SIM115
    return stream


def _summary_row(line: dict[str, Any], run_id: str) -> tuple[str, str, str, int, str]:
    """One results line (``{"key", "text", "response" | "error", "usage"}``) as a table row."""
    if "error" in line:
        error = line["error"] or {}
        return line["key"], error.get("message", ""), "failed", 0, run_id
    tokens = int((line.get("usage") or {}).get("totalTokenCount", 0))
    return line["key"], (line.get("text") or "").strip(), "succeeded", tokens, run_id


nightly_dag = gemini_batch_nightly()
