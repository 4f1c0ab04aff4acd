"""Embed support-ticket subjects with an inline Gemini embeddings batch, waiting in the triggerer.

What it shows:

1. ``build_embedding_requests`` turns each subject of ``data/support_tickets.csv`` into an
   ``EmbedContentRequest`` keyed by ticket id, asking for 8-dimensional vectors (``outputDimensionality``).
2. ``GeminiSubmitEmbeddingsBatchOperator`` sends them inline (no file upload: small inputs fit in the
   create call) and, being ``deferrable``, waits for the job in the triggerer: the operator itself defers,
   no separate sensor is needed.
3. ``GeminiDownloadResultsOperator`` streams the vectors to a JSONL file; only a manifest goes to XCom.
4. ``store_vectors`` checks that every vector has the requested dimensions (a wrong size fails the task
   before anything is written) and stores them in the SQLite table ``subject_embeddings``.

Configuration (all optional): connection ``gemini_default``; ``GEMINI_EMBEDDING_MODEL`` (default
``gemini-embedding-001``); ``GEMINI_POLL_INTERVAL`` seconds (default 60); Variable ``gemini_results_dir``
or ``$GEMINI_RESULTS_DIR`` (default ``$AIRFLOW_HOME/gemini_results``); ``GEMINI_DEMO_DB`` (default
``$AIRFLOW_HOME/gemini_demo.db``).
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from airflow.sdk import ObjectStoragePath, Param, dag, task

from airflow_provider_gemini_batch.operators import (
    GeminiDownloadResultsOperator,
    GeminiSubmitEmbeddingsBatchOperator,
)

TICKETS_CSV = Path(__file__).parent / "data" / "support_tickets.csv"
AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
EMBEDDING_MODEL = os.environ.get("GEMINI_EMBEDDING_MODEL", "gemini-embedding-001")
POLL_INTERVAL = float(os.environ.get("GEMINI_POLL_INTERVAL", "60"))
DIMENSIONS = 8


@dag(
    dag_id="gemini_embeddings_batch",
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
    tags=["gemini", "batch", "embeddings", "example"],
    doc_md=__doc__,
)
def gemini_embeddings_batch() -> None:
    @task
    def build_embedding_requests() -> list[dict[str, Any]]:
        """One EmbedContentRequest per ticket subject, keyed by ticket id."""
        with TICKETS_CSV.open(newline="", encoding="utf-8") as stream:
            return [
                {
                    "key": ticket["ticket_id"],
                    "request": {
                        "content": {"parts": [{"text": ticket["subject"]}]},
                        "taskType": "CLUSTERING",
                        "outputDimensionality": DIMENSIONS,
                    },
                }
                for ticket in csv.DictReader(stream)
            ]

    embed = GeminiSubmitEmbeddingsBatchOperator(
        task_id="embed_subjects",
        model=EMBEDDING_MODEL,
        requests=build_embedding_requests(),
        display_name="ticket-subjects-{{ run_id }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
    download = GeminiDownloadResultsOperator(
        task_id="download_vectors",
        batch_name=embed.output,
        destination="{{ var.value.get('gemini_results_dir', params.results_dir) }}",
    )

    @task
    def store_vectors(manifest: dict[str, Any], run_id: str | None = None) -> dict[str, int]:
        """Check every vector's size, then store the vectors in ``subject_embeddings`` (one transaction)."""
        database = os.environ.get("GEMINI_DEMO_DB", os.path.join(AIRFLOW_HOME, "gemini_demo.db"))
        os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
        with closing(sqlite3.connect(database)) as connection, connection, _open_results(manifest["path"]) as lines:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS subject_embeddings ("
                " ticket_id TEXT NOT NULL, dimensions INTEGER NOT NULL, vector TEXT NOT NULL,"
                " run_id TEXT NOT NULL, PRIMARY KEY (run_id, ticket_id))"
            )
            # The ``with connection`` block rolls back every row when a vector has the wrong size.
            cursor = connection.executemany(
                "INSERT OR REPLACE INTO subject_embeddings (ticket_id, dimensions, vector, run_id) VALUES (?, ?, ?, ?)",
                ((key, len(vector), json.dumps(vector), run_id or "") for key, vector in _vectors(lines)),
            )
        return {"stored": cursor.rowcount, "failed": manifest["failed_count"]}

    store_vectors(download.output)


def _vectors(lines: IO[bytes]) -> Iterator[tuple[str, list[float]]]:
    """Yield ``(key, vector)`` for each successful result; raise on a vector of the wrong size."""
    for raw in lines:
        if not raw.strip():
            continue
        line = json.loads(raw)
        if "error" in line:
            continue
        vector = line["response"]["embedding"]["values"]
        if len(vector) != DIMENSIONS:
            raise ValueError(f"Ticket {line['key']}: got a {len(vector)}-dimensional vector, expected {DIMENSIONS}.")
        yield line["key"], vector


def _open_results(path: str) -> IO[bytes]:
    """Open the results file, local or on object storage (``s3://...``), for streaming."""
    stream: IO[bytes] = ObjectStoragePath(path).open("rb") if "://" in path else open(path, "rb")  # noqa: SIM115
    return stream


embeddings_dag = gemini_embeddings_batch()
