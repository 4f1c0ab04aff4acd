"""The DAGs of ``test_standalone_durability.py``: one deferrable submit task each, one scenario each.

- ``gemini_durability_clear_deferred``: cleared while deferred; the next try reconnects to the job.
- ``gemini_durability_mark_failed_deferred``: marked failed while deferred; the trigger's on_kill
  cancels the job (Airflow 3.3+).
- ``gemini_durability_triggerer_restart``: waiting while the triggerer is killed and another one takes
  its triggers over.
- ``gemini_durability_killed_create``: its process killed while the create is held in flight; the
  retry comes soon after the kill and must wait for the held create, not send another.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator

RETRIES = {
    "gemini_durability_clear_deferred": 0,
    "gemini_durability_mark_failed_deferred": 0,
    "gemini_durability_triggerer_restart": 0,
    "gemini_durability_killed_create": 1,
}

for dag_id, retries in RETRIES.items():
    with DAG(
        dag_id=dag_id,
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
            retries=retries,
            retry_delay=timedelta(seconds=5),
        )
