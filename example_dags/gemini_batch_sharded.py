"""Scale out: split one large input into shards, submit one batch job per shard, merge the results.

The Gemini Batch API takes at most 2 GB per input file, runs a limited number of jobs per project
at once, and caps the tokens a model holds in queue across active jobs. Inputs past those limits run
as several jobs. This DAG drafts first replies to support tickets the way a large input would run:

- ``build_input`` writes the requests as one JSONL file (in production: your s3:// or gs:// file,
  any size; pass it as the ``source`` param);
- ``split_input`` (``GeminiSplitInputOperator``) streams it into shard files under byte, request and
  token limits, validating every line first, and returns the shard paths;
- ``submit_shard`` (``GeminiSubmitBatchOperator``, mapped with ``.expand(input_path=...)``) submits
  one job per shard and waits for it in the triggerer. Each mapped task submits once, whatever
  retries or crashes happen (its durable key includes the map index); a create refused for quota
  (429 RESOURCE_EXHAUSTED) waits deferred and tries again when quota frees;
- ``merge_results`` (``GeminiDownloadResultsOperator`` given every shard's batch name) writes one
  results file per shard and one ``manifest.json``, accounting for every input key.

The 12 example tickets go into shards of 2 requests, so 6 jobs run side by side; on a Celery or
Kubernetes executor they spread over the workers, and their waits over the triggerers.

Configuration (all optional): connection ``gemini_default``; ``GEMINI_MODEL`` (default
``gemini-2.5-flash``); ``GEMINI_POLL_INTERVAL`` seconds (default 60); ``GEMINI_WAIT_TIMEOUT`` seconds
(default 86400); ``$GEMINI_RESULTS_DIR`` (default ``$AIRFLOW_HOME/gemini_results``); params
``source`` (a JSONL file to split instead of the tickets) and ``max_requests`` (per shard).
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import Param, dag, get_current_context, task

from airflow_provider_gemini_batch.operators import (
    GeminiDownloadResultsOperator,
    GeminiSplitInputOperator,
    GeminiSubmitBatchOperator,
)

TICKETS_CSV = Path(__file__).parent / "data" / "support_tickets.csv"
AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
MODEL = os.environ.get("GEMINI_MODEL", "gemini-2.5-flash")
POLL_INTERVAL = float(os.environ.get("GEMINI_POLL_INTERVAL", "60"))
WAIT_TIMEOUT = float(os.environ.get("GEMINI_WAIT_TIMEOUT", str(24 * 60 * 60)))
RESULTS_DIR = os.environ.get("GEMINI_RESULTS_DIR", os.path.join(AIRFLOW_HOME, "gemini_results"))


@dag(
    dag_id="gemini_batch_sharded",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "source": Param("", type="string", description="A JSONL file to split (local or URI); empty: the tickets."),
        "max_requests": Param(2, type="integer", minimum=1, description="Requests per shard."),
    },
    tags=["gemini", "batch", "scale-out", "example"],
    doc_md=__doc__,
)
def gemini_batch_sharded() -> None:
    @task
    def build_input() -> str:
        """Write one request per ticket to a JSONL file for this run, unless the run names its own source."""
        context = get_current_context()
        if context["params"]["source"]:
            return str(context["params"]["source"])
        path = Path(RESULTS_DIR) / "sharded" / context["run_id"].replace(":", "_") / "input.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with TICKETS_CSV.open(newline="", encoding="utf-8") as tickets, path.open("w", encoding="utf-8") as out:
            for ticket in csv.DictReader(tickets):
                prompt = (
                    f"Draft a friendly two-sentence first reply.\n\nSubject: {ticket['subject']}\n\n{ticket['body']}"
                )
                request = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
                out.write(json.dumps({"key": ticket["ticket_id"], "request": request}) + "\n")
        return str(path)

    source = build_input()
    run_folder = RESULTS_DIR + "/sharded/{{ run_id | replace(':', '_') }}"
    split = GeminiSplitInputOperator(
        task_id="split_input",
        source=source,
        destination=run_folder + "/shards",
        max_requests="{{ params.max_requests }}",
    )
    submit = GeminiSubmitBatchOperator.partial(
        task_id="submit_shard",
        model=MODEL,
        display_name="first-replies-{{ run_id }}",
        poll_interval=POLL_INTERVAL,
        timeout=WAIT_TIMEOUT,
    ).expand(input_path=split.output)
    GeminiDownloadResultsOperator(
        task_id="merge_results",
        batch_name=submit.output,
        input_paths=split.output,
        destination=run_folder + "/results",
    )


sharded_dag = gemini_batch_sharded()
