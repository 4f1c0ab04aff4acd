"""Operators of ``operators/batch.py`` beyond submit: what a user passing the wrong thing sees, and the cancel wait."""

from __future__ import annotations

import json

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError, GeminiBatchTimeout
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.operators import (
    GeminiCancelBatchOperator,
    GeminiSubmitBatchOperator,
    GeminiSubmitEmbeddingsBatchOperator,
)
from tests.airflow_flow import RecordingTaskInstance

REQUESTS = [{"key": "1", "request": {"content": {"parts": [{"text": "hello"}]}}}]


@pytest.mark.parametrize("operator", [GeminiSubmitBatchOperator, GeminiSubmitEmbeddingsBatchOperator])
def test_the_kind_of_job_is_the_operator_not_an_embeddings_flag(operator: type[GeminiSubmitBatchOperator]) -> None:
    """``GeminiSubmitEmbeddingsBatchOperator(embeddings=False)`` once submitted a generation job."""
    with pytest.raises(TypeError, match="embeddings"):
        operator(task_id="submit", model="gemini-embedding-001", requests=REQUESTS, embeddings=False)


def test_a_cancel_that_does_not_take_effect_in_time_raises_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps({"conn_type": "gemini", "password": "k"}))
    cancels: list[str] = []

    def service(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(":cancel"):
            cancels.append(request.url.path)
            return httpx.Response(200, json={})
        # The job never stops: the live service cancels asynchronously, and may be slow to.
        return httpx.Response(200, json={"name": "batches/b1", "metadata": {"state": "BATCH_STATE_RUNNING"}})

    operator = GeminiCancelBatchOperator(
        task_id="cancel", batch_name="batches/b1", wait_for_termination=True, poll_interval=0.05, timeout=0.3
    )
    operator.hook = GeminiBatchHook(transport=httpx.MockTransport(service))
    with pytest.raises(GeminiBatchTimeout, match="batches/b1"):
        operator.execute({})
    assert cancels == ["/v1beta/batches/b1:cancel"]


def test_requests_of_the_other_kind_are_refused_before_anything_is_sent(gemini_connection: EmulatorHandle) -> None:
    generation = [{"key": "1", "request": {"contents": [{"parts": [{"text": "hello"}]}]}}]
    operator = GeminiSubmitEmbeddingsBatchOperator(
        task_id="embed", model="gemini-embedding-001", requests=generation, wait_for_completion=False
    )
    with pytest.raises(GeminiBatchInputError, match="content"):
        operator.execute({"ti": RecordingTaskInstance()})
    assert gemini_connection.control.requests() == []
