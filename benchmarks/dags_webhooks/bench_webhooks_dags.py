"""The DAGs of bench_webhooks.py: a job's completion to downstream work, pushed (webhook) or polled.

- ``bench_webhook_submit``: submits one inline request with a ``webhookConfig`` pointing at the
  api-server's receiver (the run's conf ``webhook_uri``) and ends at once (``wait_for_completion=False``).
- ``bench_webhook_downstream``: scheduled on ``gemini_batch_completed("gemini_default")``, with no
  watcher (no safety-net poll), so only the webhook can start it; its first task's start is the end
  point. Several runs may be active, so a job ending while another's run is active does not queue.
- ``bench_poll``: the deferrable submit operator waiting at its default poll interval, on the
  connection ``gemini_poll`` (a second emulator, so each mode's API calls are counted apart), then a
  downstream task whose start is the end point.

Each submit's display name is its run id, so the benchmark finds the job of a run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_gemini_batch.assets import completed_batches, gemini_batch_completed
from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator

COMPLETED = gemini_batch_completed("gemini_default")
REQUESTS = [{"key": "k1", "request": {"contents": [{"parts": [{"text": "hello"}], "role": "user"}]}}]
START = datetime(2025, 1, 1)

with DAG(dag_id="bench_webhook_submit", schedule=None, start_date=START, catchup=False, max_active_runs=16):
    GeminiSubmitBatchOperator(
        task_id="submit",
        model="gemini-2.5-flash",
        requests=REQUESTS,
        display_name="{{ run_id }}",
        wait_for_completion=False,
        webhook_uris=["{{ dag_run.conf['webhook_uri'] }}"],
    )

with DAG(dag_id="bench_webhook_downstream", schedule=[COMPLETED], start_date=START, catchup=False, max_active_runs=16):

    @task
    def downstream(triggering_asset_events: Any = None) -> list[str]:
        """The end point: its start. Returns the jobs it was started for."""
        events = triggering_asset_events.get(COMPLETED, []) if triggering_asset_events else []
        return [job.batch for job in completed_batches(events)]

    downstream()

with DAG(dag_id="bench_poll", schedule=None, start_date=START, catchup=False, max_active_runs=16):

    @task
    def after_completion() -> None:
        """The end point: its start."""

    (
        GeminiSubmitBatchOperator(
            task_id="submit",
            gemini_conn_id="gemini_poll",
            model="gemini-2.5-flash",
            requests=REQUESTS,
            display_name="{{ run_id }}",
        )
        >> after_completion()
    )
