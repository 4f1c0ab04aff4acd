"""Download and load a batch job's results as soon as the job finishes: a DAG scheduled on an asset.

The second half of ``gemini_batch_event_driven``, which submits jobs and ends at once. This DAG runs when
a job of the connection ``gemini_default`` reaches a final state. Two paths feed its asset,
``gemini_batch_completed("gemini_default")``:

- **push**: the service POSTs a signed completion event to the provider's receiver in the api-server
  (``/gemini-batch/webhooks/gemini_default``), which records an asset event within a second;
- **pull**: an ``AssetWatcher`` on the same asset runs ``GeminiBatchCompletedTrigger`` in the triggerer.
  It lists the connection's jobs once per interval and announces each job that finished unannounced,
  so a lost webhook costs one interval, not a missed load. On Airflow 3.3+ the two paths share what
  they announced (the asset's state store), so a job normally triggers one run. On 3.0-3.2 the poll
  announces a job the webhook announced too; that second run finds the results already downloaded.

What a run does:

1. ``announced_jobs`` reads the run's triggering asset events with ``completed_batches``: the jobs they
   name, each once, whichever path announced them (several jobs when events arrived together).
2. ``download_results``, one mapped ``GeminiDownloadResultsOperator`` per job that succeeded, streams
   its results to ``<results folder>/<display name>-<job id>.jsonl``. A file already complete there
   (a job announced twice) is kept and not downloaded again.
3. ``load_results`` "loads" each file: it streams it and prints one summary line per job.

Configuration (all optional):

- connection ``gemini_default`` (see ``gemini_batch_event_driven``).
- results folder: Variable ``gemini_results_dir``, else the ``results_dir`` param, whose default is
  ``$GEMINI_RESULTS_DIR`` or ``$AIRFLOW_HOME/gemini_results`` (a local path or an object-storage URI).
- ``GEMINI_COMPLETION_POLL_INTERVAL``: seconds between the safety net's looks (default 300).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import IO, Any

from airflow.sdk import Asset, AssetWatcher, ObjectStoragePath, Param, dag, task

from airflow_provider_gemini_batch.assets import completed_batches, gemini_batch_completed
from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator
from airflow_provider_gemini_batch.triggers import GeminiBatchCompletedTrigger

CONN_ID = "gemini_default"
# What gemini_batch_event_driven puts in its jobs' webhook_metadata; jobs without it are taken too.
PIPELINE = "support-triage"
AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
# How long a lost webhook may delay a load: one listing of the connection's jobs per interval.
COMPLETION_POLL_INTERVAL = float(os.environ.get("GEMINI_COMPLETION_POLL_INTERVAL", "300"))

COMPLETED = gemini_batch_completed(CONN_ID)
# The same asset (same name and URI), with the safety net watching it. Tasks read events with COMPLETED.
# (triggers.watched_gemini_batch_completed(CONN_ID) builds the same thing in one call.)
COMPLETED_WITH_SAFETY_NET = Asset(
    name=COMPLETED.name,
    uri=COMPLETED.uri,
    group=COMPLETED.group,
    watchers=[
        AssetWatcher(
            name=f"gemini_batch_completed_poll_{CONN_ID}",
            trigger=GeminiBatchCompletedTrigger(gemini_conn_id=CONN_ID, poll_interval=COMPLETION_POLL_INTERVAL),
        )
    ],
)


@dag(
    dag_id="gemini_batch_results_on_completion",
    schedule=[COMPLETED_WITH_SAFETY_NET],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "results_dir": Param(
            os.environ.get("GEMINI_RESULTS_DIR", os.path.join(AIRFLOW_HOME, "gemini_results")),
            type="string",
            description="Where the results JSONL files go (the Variable gemini_results_dir wins when set).",
        )
    },
    tags=["gemini", "batch", "webhook", "example"],
    doc_md=__doc__,
)
def gemini_batch_results_on_completion() -> None:
    @task
    def announced_jobs(triggering_asset_events: Any = None) -> list[str]:
        """The succeeded jobs this run was triggered for; the others are reported and left alone."""
        events = triggering_asset_events.get(COMPLETED, []) if triggering_asset_events else []
        jobs = completed_batches(events)
        for job in jobs:
            print(f"{job.batch} ended {job.state} (announced by {job.source}); metadata {job.user_metadata}")
        # The asset announces every job of the connection: leave other pipelines' jobs to their own DAGs.
        return [job.batch for job in jobs if job.succeeded and job.user_metadata.get("pipeline", PIPELINE) == PIPELINE]

    downloads = GeminiDownloadResultsOperator.partial(
        task_id="download_results",
        gemini_conn_id=CONN_ID,
        destination="{{ var.value.get('gemini_results_dir', params.results_dir) }}",
    ).expand(batch_name=announced_jobs())

    @task
    def load_results(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stream each results file (your warehouse load goes here) and print a line per job."""
        loaded = []
        for manifest in manifests:
            results = failed = 0
            with _open_results(manifest["path"]) as lines:
                for line in lines:
                    if line.strip():
                        results += 1
                        failed += "error" in json.loads(line)
            print(f"Loaded {results} results of {manifest['batch_name']} ({failed} failed) from {manifest['path']}")
            loaded.append({"batch": manifest["batch_name"], "results": results, "failed": failed})
        return loaded

    load_results(downloads.output)


def _open_results(path: str) -> IO[bytes]:
    """Open a results file, local or on object storage (``s3://...``), for streaming."""
    stream: IO[bytes] = ObjectStoragePath(path).open("rb") if "://" in path else open(path, "rb")  # noqa: SIM115
    return stream


results_on_completion_dag = gemini_batch_results_on_completion()
