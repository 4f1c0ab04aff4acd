"""Set-up DAG operators for webhooks, run by ``dag.test()`` in real Airflow against the emulator.

The signing secret is shown once (``docs/protocol.md``, "Webhooks"): it lands in the Variable named
by ``secret_variable`` and nowhere else (not in XCom, not in the task's log).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook

from ..secret_scan import searchable

RECEIVER = "http://127.0.0.1:9/gemini-batch/webhooks/gemini_default"

DAG_FILE = """
import json, os
from airflow.sdk import DAG, task
from airflow_provider_gemini_batch.operators import GeminiCreateWebhookOperator, GeminiDeleteWebhookOperator

with DAG("{dag_id}", schedule=None) as dag:
    created = {operator}

    @task
    def keep(result):
        with open(os.environ["WEBHOOK_TEST_XCOM"], "w") as out:
            json.dump(result, out)

    keep(created.output)
"""

RunDag = Callable[[str, str], tuple[str, dict[str, Any] | None, str]]


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def run_dag(
    airflow_db: None,
    gemini_connection: EmulatorHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> RunDag:
    """Return ``run(dag_id, operator source)``: the run's state, the create task's XCom, and what was printed."""
    from airflow import settings

    dags = tmp_path / "dags"
    dags.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(dags))

    def run(dag_id: str, operator: str) -> tuple[str, dict[str, Any] | None, str]:
        xcom = tmp_path / f"{dag_id}.json"
        monkeypatch.setenv("WEBHOOK_TEST_XCOM", str(xcom))
        path = dags / f"{dag_id}.py"
        path.write_text(DAG_FILE.format(dag_id=dag_id, operator=operator))
        spec = importlib.util.spec_from_file_location(dag_id, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, dag_id, module)
        capfd.readouterr()
        spec.loader.exec_module(module)
        dag_run = module.dag.test()
        captured = capfd.readouterr()
        result = json.loads(xcom.read_text()) if xcom.exists() else None
        return str(dag_run.state), result, captured.out + captured.err

    return run


def _variable(key: str) -> str | None:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Variable).filter(Variable.key == key).one_or_none()
        return None if row is None else str(row.val)


def test_the_secret_goes_to_the_variable_and_nowhere_else(run_dag: RunDag) -> None:
    operator = (
        f"GeminiCreateWebhookOperator(task_id='create', uri={RECEIVER!r}, webhook_id='results', "
        "secret_variable='gemini_webhook_secret')"
    )
    state, result, printed = run_dag("webhook_setup", operator)
    assert state == "success", printed[-3000:]
    assert result == {
        "name": "webhooks/results",
        "uri": RECEIVER,
        "subscribed_events": ["batch.succeeded", "batch.failed", "batch.cancelled", "batch.expired"],
    }
    secret = _variable("gemini_webhook_secret")
    assert secret is not None
    assert secret.startswith("whsec_")
    truncated = GeminiBatchHook().get_webhook("webhooks/results").signing_secrets[0].truncated_secret or ""
    start, _, end = truncated.partition("...")
    assert secret.startswith(start)
    assert secret.endswith(end), "the Variable holds the webhook's own secret"
    assert "gemini_webhook_secret" in printed
    assert secret not in searchable(printed), "the secret is never printed"


def test_a_rerun_reuses_the_webhook_and_leaves_the_stored_secret(
    run_dag: RunDag, gemini_connection: EmulatorHandle
) -> None:
    operator = (
        f"GeminiCreateWebhookOperator(task_id='create', uri={RECEIVER!r}, webhook_id='again', "
        "secret_variable='gemini_again_secret')"
    )
    assert run_dag("webhook_first", operator)[0] == "success"
    first = _variable("gemini_again_secret")
    state, result, printed = run_dag("webhook_second", operator)
    assert state == "success", printed[-3000:]
    assert result is not None
    assert result["name"] == "webhooks/again"
    assert _variable("gemini_again_secret") == first, "the secret stored by the first run is kept"
    assert "issued when it was first created" in printed
    assert [webhook.name for webhook in GeminiBatchHook().list_webhooks()] == ["webhooks/again"]


def test_a_reused_webhook_whose_secret_was_never_stored_gets_a_new_one_in_the_variable(
    run_dag: RunDag, gemini_connection: EmulatorHandle
) -> None:
    """A create whose reply was lost and was resent finds the webhook made: its secret went with the reply."""
    GeminiBatchHook().create_webhook(RECEIVER, webhook_id="lost")  # The secret of this reply is never kept.
    operator = (
        f"GeminiCreateWebhookOperator(task_id='create', uri={RECEIVER!r}, webhook_id='lost', "
        "secret_variable='gemini_lost_secret')"
    )
    state, _, printed = run_dag("webhook_lost_secret", operator)
    assert state == "success", printed[-3000:]
    secret = _variable("gemini_lost_secret")
    assert secret is not None, "the Variable the log names must hold a secret"
    (current,) = GeminiBatchHook().get_webhook("webhooks/lost").signing_secrets  # The lost one is revoked.
    start, _, end = (current.truncated_secret or "").partition("...")
    assert secret.startswith(start)
    assert secret.endswith(end)
    assert secret not in searchable(printed)


def test_without_a_variable_the_secret_is_discarded_loudly(run_dag: RunDag) -> None:
    operator = f"GeminiCreateWebhookOperator(task_id='create', uri={RECEIVER!r})"
    state, result, printed = run_dag("webhook_discard", operator)
    assert state == "success", printed[-3000:]
    assert result is not None
    assert result["uri"] == RECEIVER
    assert "IS DISCARDED" in printed
    assert "rotate_webhook_signing_secret" in printed
    assert "whsec_" not in printed.replace("whsec_...", "")


def test_deleting_a_webhook_already_gone_succeeds(
    gemini_connection: EmulatorHandle, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_gemini_batch.operators import GeminiDeleteWebhookOperator

    hook = GeminiBatchHook()
    hook.create_webhook(RECEIVER, webhook_id="doomed")
    GeminiDeleteWebhookOperator(task_id="delete", webhook="webhooks/doomed").execute({})  # type: ignore[arg-type]
    assert list(hook.list_webhooks()) == []
    capfd.readouterr()
    created_result = {"name": "webhooks/doomed", "uri": RECEIVER, "subscribed_events": []}
    GeminiDeleteWebhookOperator(task_id="delete", webhook=created_result).execute({})  # type: ignore[arg-type]
    assert "webhooks/doomed does not exist" in capfd.readouterr().out


def test_templated_fields() -> None:
    from airflow_provider_gemini_batch.operators import GeminiCreateWebhookOperator, GeminiDeleteWebhookOperator

    assert set(GeminiCreateWebhookOperator.template_fields) >= {
        "uri",
        "subscribed_events",
        "display_name",
        "webhook_id",
        "secret_variable",
    }
    assert "webhook" in GeminiDeleteWebhookOperator.template_fields
