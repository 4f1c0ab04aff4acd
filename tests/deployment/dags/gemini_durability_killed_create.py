"""A deferrable submit task, its process killed while the create is held in flight: the retry reconnects."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator

with DAG(
    dag_id="gemini_durability_killed_create",
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
        # The retry comes soon after the kill: it must wait for the held create, not send another.
        retries=1,
        retry_delay=timedelta(seconds=5),
    )
