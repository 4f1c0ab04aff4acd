"""The DAG of ``test_standalone_ui.py``: one job of three requests (one fails), waited for, its results downloaded.

The job ends with counts to show (2 succeeded, 1 failed), and its submit and download tasks carry
the "Gemini batch" extra link the test follows.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator, GeminiSubmitBatchOperator

TEXTS = ("hello", "how are you", "please [[fail]]")  # the emulator fails a prompt with [[fail]]

with DAG(dag_id="gemini_ui", schedule=None, start_date=datetime(2025, 1, 1), catchup=False, tags=["gemini", "test"]):
    submit = GeminiSubmitBatchOperator(
        task_id="submit",
        model="gemini-2.5-flash",
        requests=[
            {"key": f"request-{index}", "request": {"contents": [{"parts": [{"text": text}], "role": "user"}]}}
            for index, text in enumerate(TEXTS)
        ],
        display_name="nightly summaries",
        poll_interval=1,
    )
    submit >> GeminiDownloadResultsOperator(
        task_id="download", batch_name=submit.output, destination=os.environ["GEMINI_RESULTS_DIR"]
    )
