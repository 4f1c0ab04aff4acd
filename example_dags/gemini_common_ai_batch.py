"""Support-ticket triage with Airflow's common AI provider, ``@task.llm_batch``, on Gemini Batch Mode.

What it shows:

1. ``triage_tickets`` is an ``@task.llm_batch`` task: the function returns one prompt per ticket of
   ``data/support_tickets.csv``, and common-ai sends them as one Gemini batch job, at the batch price,
   through this provider's adapter (``model_id="google:gemini-2.5-flash"``, connection ``gemini_default``).
   Small inputs go inline; past 20 MB the adapter uploads them as a JSONL file.
2. common-ai waits for the job, writes one JSONL row per prompt under ``result_path`` and returns a
   manifest (where the rows are, and how many succeeded, errored, ...). A retry, or a worker that died
   right after submitting, re-attaches to the same job instead of paying for a second one.
3. ``report`` reads the rows back and matches each to its ticket by ``index`` (the prompt's position).

Partial failure: ticket ``T-1010`` carries the marker ``[[fail]]``, which the emulator answers with a
per-request error (the real model just answers it). The job still succeeds; the ticket's row has
``status = "error"``, and the manifest counts it under ``errored``.

Needs ``pip install 'airflow-provider-gemini-batch[common-ai]'``. Configuration (all optional):
connection ``gemini_default`` (type ``gemini``, the API key in the password); ``GEMINI_MODEL``
(default ``gemini-2.5-flash``); Variable ``gemini_results_dir`` or ``$GEMINI_RESULTS_DIR`` (default
``$AIRFLOW_HOME/gemini_results``): a local folder, or an object-storage URI such as ``s3://bucket/prefix``.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath, dag, task

TICKETS_CSV = Path(__file__).parent / "data" / "support_tickets.csv"
AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
MODEL = os.environ.get("GEMINI_MODEL", "gemini-2.5-flash")
RESULTS_DIR = os.environ.get("GEMINI_RESULTS_DIR", os.path.join(AIRFLOW_HOME, "gemini_results"))

SYSTEM_PROMPT = (
    "You triage customer support tickets. Classify the ticket as exactly one of: billing, account, bug, "
    "feature_request, privacy, cancellation, feedback, other. Reply with one line: "
    "'<category>: <summary of at most 25 words>'."
)


def read_tickets() -> list[dict[str, str]]:
    """The day's tickets (a small CSV here; a warehouse query in real life), always in the same order."""
    with TICKETS_CSV.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@dag(
    dag_id="gemini_common_ai_batch",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["gemini", "batch", "common-ai", "example"],
    doc_md=__doc__,
)
def gemini_common_ai_batch() -> None:
    @task.llm_batch(
        llm_conn_id="gemini_default",
        model_id=f"google:{MODEL}",
        # A folder URI, the same on every try of a task: common-ai keeps its state for retries there too.
        result_path="{{ var.value.get('gemini_results_dir', '" + RESULTS_DIR + "') }}/common-ai",
        system_prompt=SYSTEM_PROMPT,
        request_params={"temperature": 0.2},
        # Batch jobs take minutes to hours; common-ai polls every poll_interval seconds (30 at least).
        poll_interval=60,
        deferrable=True,
    )
    def triage_tickets() -> list[str]:
        # Must return the same prompts on every try: they are fingerprinted to find the job again.
        return [f"{ticket['subject']}\n\n{ticket['body']}\n\n(from {ticket['customer']})" for ticket in read_tickets()]

    @task
    def report(manifest: dict[str, Any]) -> dict[str, int]:
        """Match every result row to its ticket and print it; return the manifest's counts."""
        tickets = read_tickets()
        with ObjectStoragePath(manifest["result_uri"]).open("r") as rows:
            # Line by line through readline: Airflow 3.0's wrapper around the file cannot be iterated.
            for line in iter(rows.readline, ""):
                row = json.loads(line)
                ticket = tickets[row["index"]]["ticket_id"]
                if row["status"] == "success":
                    print(f"{ticket}: {row['output']}")
                else:
                    print(f"{ticket}: {row['status']}: {(row['error'] or {}).get('message')}")
        counts: dict[str, int] = manifest["counts"]
        return counts

    report(triage_tickets())


common_ai_dag = gemini_common_ai_batch()
