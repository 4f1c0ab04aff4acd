"""``GeminiSubmitBatchOperator(webhook_uris=..., webhook_metadata=...)`` sets the job's ``webhookConfig``.

The wire shape is ``{"uris": [...], "user_metadata": {...}}`` (``docs/protocol.md``, "Webhooks").
Bad values are refused before anything is uploaded or created.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator
from tests.airflow_flow import RecordingTaskInstance, requests

RECEIVER = "https://airflow.example.com/gemini-batch/webhooks/gemini_default"


class CreateRecorder:
    """The service's create endpoint: records each create body and answers with a pending job."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith(":batchGenerateContent"), request.url.path
        self.bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"name": "batches/b1", "metadata": {"state": "BATCH_STATE_PENDING"}})


def _submit(recorder: CreateRecorder, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> dict[str, Any]:
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps({"conn_type": "gemini", "password": "k"}))
    operator = GeminiSubmitBatchOperator(
        task_id="submit", model="gemini-2.5-flash", requests=requests(1), wait_for_completion=False, **kwargs
    )
    operator.hook = GeminiBatchHook(transport=httpx.MockTransport(recorder))
    assert operator.execute({"ti": RecordingTaskInstance()}) == "batches/b1"
    (body,) = recorder.bodies
    batch: dict[str, Any] = body["batch"]
    return batch


def test_uris_and_metadata_become_the_jobs_webhook_config(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _submit(
        CreateRecorder(),
        monkeypatch,
        webhook_uris=[RECEIVER, "http://127.0.0.1:8080/hook"],
        webhook_metadata={"dag_run": "nightly", "attempt": 1},
    )
    assert batch["webhookConfig"] == {
        "uris": [RECEIVER, "http://127.0.0.1:8080/hook"],
        "user_metadata": {"dag_run": "nightly", "attempt": 1},
    }


def test_metadata_alone_goes_to_the_projects_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _submit(CreateRecorder(), monkeypatch, webhook_metadata={"source": "nightly"})
    assert batch["webhookConfig"] == {"user_metadata": {"source": "nightly"}}


def test_without_either_no_webhook_config_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "webhookConfig" not in _submit(CreateRecorder(), monkeypatch)


def test_it_composes_with_other_batch_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _submit(CreateRecorder(), monkeypatch, webhook_uris=RECEIVER, extra_batch_fields={"priority": "10"})
    assert batch["priority"] == "10"
    assert batch["webhookConfig"] == {"uris": [RECEIVER]}


@pytest.mark.parametrize("field", ["webhookConfig", "webhook_config"])
def test_a_webhook_config_given_twice_is_refused(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    recorder = CreateRecorder()
    with pytest.raises(GeminiBatchInputError, match=f"extra_batch_fields.*{field}.*webhook_uris"):
        _submit(recorder, monkeypatch, webhook_uris=[RECEIVER], extra_batch_fields={field: {"uris": [RECEIVER]}})
    assert recorder.bodies == []


def test_both_fields_are_templated() -> None:
    operator = GeminiSubmitBatchOperator(
        task_id="submit",
        model="gemini-2.5-flash",
        requests=requests(1),
        webhook_uris=["{{ params.receiver }}"],
        webhook_metadata={"run": "{{ params.run }}"},
    )
    operator.render_template_fields({"params": {"receiver": RECEIVER, "run": "r1"}})  # type: ignore[arg-type]
    assert (operator.webhook_uris, operator.webhook_metadata) == ([RECEIVER], {"run": "r1"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"webhook_uris": [RECEIVER, "/gemini-batch/webhooks/x"]}, r"webhook_uris\[1\] '/gemini-batch/webhooks/x'"),
        ({"webhook_uris": ["airflow.example.com/hook"]}, r"webhook_uris\[0\].*absolute http\(s\) URL"),
        ({"webhook_uris": [""]}, r"webhook_uris\[0\] is empty"),
        ({"webhook_metadata": {"when": object()}}, r"webhook_metadata\['when'\] is not JSON"),
        ({"webhook_metadata": "run=1"}, "webhook_metadata must be a dict"),
    ],
)
def test_bad_values_are_refused_before_anything_is_uploaded(
    gemini_connection: EmulatorHandle, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in requests(2)))
    operator = GeminiSubmitBatchOperator(
        task_id="submit", model="gemini-2.5-flash", input_path=str(source), wait_for_completion=False, **kwargs
    )
    with pytest.raises(GeminiBatchInputError, match=message):
        operator.execute({"ti": RecordingTaskInstance()})
    assert gemini_connection.control.requests() == [], "nothing uploaded, nothing created"
