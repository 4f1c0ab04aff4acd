"""A deferrable submit task, marked failed while deferred: the trigger's on_kill cancels the job (Airflow 3.3+)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator

with DAG(
    dag_id="gemini_durability_mark_failed_deferred",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["gemini", "test"],
):
    GeminiSubmitBatchOperator(
        task_id="submit",
        model="gemini-2.5-flash",
        requests=[{"key": "greeting", "request": {"contents": [{"parts": [{"text": "hello"}], "role": "user"}]}}],
        # The test tells this run's jobs apart from every other scenario's by this prefix.
        display_name="{{ dag.dag_id }}-{{ run_id }}",
        deferrable=True,
        poll_interval=3,
        timeout=timedelta(minutes=5),
        retries=0,
    )
