"""The DAGs of ``test_standalone_webhooks.py``: the example pipeline's two halves, with test-sized knobs.

- ``gemini_webhooks_submit``: submits three inline requests with a ``webhookConfig`` pointing at the
  api-server's receiver (the Variable ``gemini_webhook_base_url``) and ends at once.
- ``gemini_webhooks_results``: scheduled on ``gemini_batch_completed("gemini_default")``, watched by the
  safety net every ``GEMINI_COMPLETION_POLL_INTERVAL`` seconds; downloads each announced job's results
  to ``$GEMINI_RESULTS_DIR`` and returns, per job, the number of results it read back.

As ``example_dags/gemini_batch_event_driven.py`` and ``gemini_batch_results_on_completion.py``, which
the example DAG tests run; these differ only in schedule (none), request count and the watcher's interval.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_gemini_batch.assets import completed_batches, gemini_batch_completed
from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator, GeminiSubmitBatchOperator
from airflow_provider_gemini_batch.triggers import GeminiBatchCompletedTrigger

REQUEST_COUNT = 3
COMPLETED = gemini_batch_completed("gemini_default")

with DAG(
    dag_id="gemini_webhooks_submit",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=["gemini", "test"],
):
    GeminiSubmitBatchOperator(
        task_id="submit",
        model="gemini-2.5-flash",
        requests=[
            {
                "key": f"request-{index}",
                "request": {"contents": [{"parts": [{"text": f"hello {index}"}], "role": "user"}]},
            }
            for index in range(REQUEST_COUNT)
        ],
        # The test finds each run's job by this display name.
        display_name="{{ run_id }}",
        wait_for_completion=False,
        webhook_uris=["{{ var.value.gemini_webhook_base_url }}/gemini-batch/webhooks/gemini_default"],
        webhook_metadata={"run_id": "{{ run_id }}"},
    )

with DAG(
    dag_id="gemini_webhooks_results",
    schedule=[
        Asset(
            name=COMPLETED.name,
            uri=COMPLETED.uri,
            group=COMPLETED.group,
            watchers=[
                AssetWatcher(
                    name="gemini_batch_completed_poll_gemini_default",
                    trigger=GeminiBatchCompletedTrigger(
                        gemini_conn_id="gemini_default",
                        poll_interval=float(os.environ["GEMINI_COMPLETION_POLL_INTERVAL"]),
                        # Jobs of earlier tests in the session emulator are none of this deployment's business.
                        lookback=1,
                    ),
                )
            ],
        )
    ],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["gemini", "test"],
):

    @task
    def announced_jobs(triggering_asset_events: Any = None) -> list[str]:
        jobs = completed_batches(triggering_asset_events.get(COMPLETED, []) if triggering_asset_events else [])
        return [job.batch for job in jobs if job.succeeded]

    downloads = GeminiDownloadResultsOperator.partial(
        task_id="download_results", destination=os.environ["GEMINI_RESULTS_DIR"]
    ).expand(batch_name=announced_jobs())

    @task
    def load_results(manifests: list[dict[str, Any]]) -> list[list[Any]]:
        """Each job's results read back from its file: ``[batch name, lines]``."""
        loaded = []
        for manifest in manifests:
            with open(manifest["path"], "rb") as lines:
                loaded.append([manifest["batch_name"], sum(1 for line in lines if line.strip())])
        return loaded

    load_results(downloads.output)
