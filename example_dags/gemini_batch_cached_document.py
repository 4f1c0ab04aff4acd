"""Many questions over one document: a context cache read by every request of a batch job, then deleted.

Each support ticket becomes one request asking for a reply that follows the support handbook
(``example_dags/data/support_handbook.md``). Sending the handbook with every request would bill its
tokens once per ticket at the input price; instead the handbook is cached once and each request names
the cache, so its tokens are billed at the (much lower) cached-input price. See
``docs/caching-and-cost.md``.

- ``cache_handbook`` (``GeminiCreateCachedContentOperator``) creates the cache and returns its name.
- ``submit_questions`` (``GeminiSubmitBatchOperator`` with ``cached_content=``) sets ``cachedContent``
  on every request, after checking that the cache is on the same model and lives long enough for a
  job that may queue (``extend_cache_ttl=`` extends it when it would not), and waits deferred.
- ``download_answers`` writes the results and returns the manifest with the tokens by kind (prompt,
  cached, output, thinking) and the estimated cost at batch and interactive prices.
- ``delete_cache`` (``GeminiDeleteCachedContentOperator``) is a teardown of ``cache_handbook``: it
  runs however the job ended (``all_done`` once the cache exists), so storage stops being billed.

The live service caches at least about 1,024 to 4,096 tokens (by model): this handbook is a short
example, so give a real document of that size or more.

Configuration (all optional): connection ``gemini_default``; ``GEMINI_MODEL`` (default
``gemini-2.5-flash``); ``GEMINI_POLL_INTERVAL`` seconds (default 60); ``GEMINI_WAIT_TIMEOUT`` seconds
(default 86400, a day); Variable ``gemini_results_dir`` or ``$GEMINI_RESULTS_DIR`` (default
``$AIRFLOW_HOME/gemini_results``).
"""

from __future__ import annotations

import csv
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_gemini_batch.operators import (
    GeminiCreateCachedContentOperator,
    GeminiDeleteCachedContentOperator,
    GeminiDownloadResultsOperator,
    GeminiSubmitBatchOperator,
)

DATA = Path(__file__).parent / "data"
AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
MODEL = os.environ.get("GEMINI_MODEL", "gemini-2.5-flash")
POLL_INTERVAL = float(os.environ.get("GEMINI_POLL_INTERVAL", "60"))
WAIT_TIMEOUT = float(os.environ.get("GEMINI_WAIT_TIMEOUT", str(24 * 60 * 60)))


@dag(
    dag_id="gemini_batch_cached_document",
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
    tags=["gemini", "batch", "caching", "example"],
    doc_md=__doc__,
)
def gemini_batch_cached_document() -> None:
    @task
    def read_handbook() -> str:
        """The document every request asks about."""
        return (DATA / "support_handbook.md").read_text(encoding="utf-8")

    @task
    def build_questions() -> list[dict[str, Any]]:
        """One request per ticket; the handbook is not in them: it comes from the cache."""
        with (DATA / "support_tickets.csv").open(newline="", encoding="utf-8") as stream:
            return [
                {
                    "key": ticket["ticket_id"],
                    "request": {
                        "contents": [
                            {
                                "role": "user",
                                "parts": [
                                    {
                                        "text": "Following the handbook, draft the first reply to this ticket.\n\n"
                                        f"Subject: {ticket['subject']}\n\n{ticket['body']}"
                                    }
                                ],
                            }
                        ]
                    },
                }
                for ticket in csv.DictReader(stream)
            ]

    cache = GeminiCreateCachedContentOperator(
        task_id="cache_handbook",
        model=MODEL,
        contents=read_handbook(),
        system_instruction="You answer customer support tickets, following the support handbook exactly.",
        # The job may wait up to WAIT_TIMEOUT; an hour more covers the download.
        ttl=timedelta(seconds=WAIT_TIMEOUT) + timedelta(hours=1),
        display_name="support-handbook-{{ run_id }}",
    )
    submit = GeminiSubmitBatchOperator(
        task_id="submit_questions",
        model=MODEL,
        requests=build_questions(),
        cached_content=cache.output,
        extend_cache_ttl=timedelta(seconds=WAIT_TIMEOUT) + timedelta(hours=1),
        display_name="handbook-replies-{{ run_id }}",
        poll_interval=POLL_INTERVAL,
        timeout=WAIT_TIMEOUT,
    )
    download = GeminiDownloadResultsOperator(
        task_id="download_answers",
        batch_name=submit.output,
        destination="{{ var.value.get('gemini_results_dir', params.results_dir) }}",
    )
    delete_cache = GeminiDeleteCachedContentOperator(task_id="delete_cache", cached_content=cache.output)

    submit >> download >> delete_cache.as_teardown(setups=cache)


cached_document_dag = gemini_batch_cached_document()
