"""Submit a batch job and end at once: the Gemini API tells Airflow when the job is done (push).

This DAG and ``gemini_batch_results_on_completion`` are one pipeline in two halves, joined by an asset
instead of a waiting task:

1. Here, ``build_requests`` turns the day's support tickets into ``GenerateContentRequest`` s, and
   ``GeminiSubmitBatchOperator`` submits them with ``wait_for_completion=False``. The job carries a
   ``webhookConfig``: the URI of this deployment's webhook receiver, and ``webhook_metadata`` (which
   DAG run submitted it). The task ends seconds after the job is created; no task, sensor or trigger
   watches the job for the hours it may take.
2. **Push.** When the job reaches a final state, the service POSTs a signed completion event to that
   URI: ``/gemini-batch/webhooks/gemini_default`` on the api-server, served by the provider's plugin.
   The receiver verifies the Standard Webhooks signature with the connection's ``webhook_secret``
   extra, drops redeliveries, and records an event on the asset ``gemini_batch_completed("gemini_default")``.
3. **Pull.** A webhook can be lost (the api-server down for longer than the service retries). The
   results DAG's asset carries an ``AssetWatcher`` whose ``GeminiBatchCompletedTrigger`` lists the
   connection's jobs once per interval and announces any job that finished unannounced, on the same
   asset. A lost webhook costs one interval, not a missed load.
4. ``gemini_batch_results_on_completion``, scheduled on that asset, downloads and loads the results of
   each job its triggering events name.

Which webhook: this DAG names the receiver on the job itself (``webhook_uris``), which needs no set-up.
How the live service signs a job's own deliveries is not confirmed (reports say with a JWT, which the
receiver refuses with 401, visible in the api-server log); if yours are refused, register a project
webhook once instead (a set-up DAG with ``GeminiCreateWebhookOperator(uri=..., webhook_id="airflow",
secret_variable="gemini_webhook_secret")``, its secret copied to ``webhook_secret``) and drop
``webhook_uris`` here: its deliveries are signed with that secret. Either way the safety net announces
every job within its interval.

Configuration (all optional):

- connection ``gemini_default``: type ``gemini``, the API key in the password, and the webhook signing
  secret (``whsec_...``) in the extra ``webhook_secret``.
- the receiver's base URL: Variable ``gemini_webhook_base_url``, else the ``webhook_base_url`` param,
  whose default is ``$GEMINI_WEBHOOK_BASE_URL`` or ``http://localhost:8080`` (the api-server's own
  address, which only a local emulator can reach). Google must reach it: give the public HTTPS address
  of a reverse proxy that forwards ``/gemini-batch/webhooks/`` to the api-server.
- ``GEMINI_MODEL`` (default ``gemini-2.5-flash``).
"""

from __future__ import annotations

import csv
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator

TICKETS_CSV = Path(__file__).parent / "data" / "support_tickets.csv"
MODEL = os.environ.get("GEMINI_MODEL", "gemini-2.5-flash")
CONN_ID = "gemini_default"
# What the service POSTs to: the receiver's route for this connection. The base URL is the address by
# which Google reaches the api-server (a reverse proxy in production); localhost suits the emulator only.
WEBHOOK_URI = "{{ var.value.get('gemini_webhook_base_url', params.webhook_base_url) }}/gemini-batch/webhooks/" + CONN_ID

SYSTEM_INSTRUCTION = (
    "You triage customer support tickets. Classify the ticket as exactly one of: billing, account, bug, "
    "feature_request, privacy, cancellation, feedback, other. Reply with one line: "
    "'<category>: <summary of at most 25 words>'."
)


@dag(
    dag_id="gemini_batch_event_driven",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "webhook_base_url": Param(
            os.environ.get("GEMINI_WEBHOOK_BASE_URL", "http://localhost:8080"),
            type="string",
            description="How the service reaches the api-server (the Variable gemini_webhook_base_url wins).",
        )
    },
    tags=["gemini", "batch", "webhook", "example"],
    doc_md=__doc__,
)
def gemini_batch_event_driven() -> None:
    @task
    def build_requests() -> list[dict[str, Any]]:
        """One triage request per ticket, keyed by ticket id so results can be matched back."""
        with TICKETS_CSV.open(newline="", encoding="utf-8") as stream:
            return [
                {
                    "key": ticket["ticket_id"],
                    "request": {
                        "systemInstruction": {"parts": [{"text": SYSTEM_INSTRUCTION}]},
                        "contents": [{"role": "user", "parts": [{"text": f"{ticket['subject']}\n\n{ticket['body']}"}]}],
                        "generationConfig": {"temperature": 0.2},
                    },
                }
                for ticket in csv.DictReader(stream)
            ]

    GeminiSubmitBatchOperator(
        task_id="submit_batch",
        gemini_conn_id=CONN_ID,
        model=MODEL,
        requests=build_requests(),
        display_name="support-triage-{{ run_id }}",
        # Return once the job exists: its completion arrives as a webhook, not through a wait here.
        wait_for_completion=False,
        webhook_uris=[WEBHOOK_URI],
        # Comes back in the completion event (CompletedBatch.user_metadata) for the results DAG to read.
        webhook_metadata={"pipeline": "support-triage", "dag_id": "{{ dag.dag_id }}", "run_id": "{{ run_id }}"},
    )


event_driven_dag = gemini_batch_event_driven()
