"""A deferrable submit task, waiting while the triggerer is killed and another one takes its triggers over."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator

with DAG(
    dag_id="gemini_durability_triggerer_restart",
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
