"""One deferrable submit task: the DAG the standalone deployment test triggers twice under parallelism 1."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator

with DAG(
    dag_id="gemini_standalone_deferral",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=2,
    tags=["gemini", "test"],
):
    GeminiSubmitBatchOperator(
        task_id="submit",
        model="gemini-2.5-flash",
        requests=[{"key": "greeting", "request": {"contents": [{"parts": [{"text": "hello"}], "role": "user"}]}}],
        display_name="{{ run_id }}",
        deferrable=True,
        # The job stays RUNNING for a minute: a short poll notices the end within seconds.
        poll_interval=5,
        timeout=timedelta(minutes=5),
    )
