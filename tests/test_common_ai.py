"""Gemini Batch Mode behind Airflow's common AI provider: ``LLMBatchOperator`` and ``@task.llm_batch`` on ``google:``.

Each DAG runs under ``dag.test()`` against the emulator, with ``llm_conn_id`` naming the ``gemini``
connection ``gemini_default``; common-ai finds the adapter through this provider's entry point.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from packaging.version import Version

from airflow_provider_gemini_batch.emulator import ECHO_PREFIX, FAILURE_MARKER, EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import Batch

if Version(pydantic.VERSION) < Version("2.12"):
    # Airflow 3.0 runs with pydantic < 2.12 (the Makefile pins it: its execution API fails a task's
    # Variable.set with 2.12+), where common-ai cannot be installed. Anywhere else a missing install fails.
    pytest.importorskip(
        "airflow.providers.common.ai",
        reason=(
            f"apache-airflow-providers-common-ai 1.0 cannot be installed with pydantic {pydantic.VERSION}: "
            "it needs pydantic-ai-slim, which needs pydantic>=2.12 (Airflow 3.0 needs pydantic<2.12)"
        ),
    )

from airflow.providers.common.ai.batch import dispatch

from airflow_provider_gemini_batch.common_ai import GeminiBatchAdapter, batch_state

# Airflow 3.0's execution API warns about a constant newer Starlette deprecates (tests/example_dags).
pytestmark = pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated")

MODEL_ID = "google:gemini-2.5-flash"
PROMPTS = ["Summarize: the printer is on fire", f"Summarize: {FAILURE_MARKER} a broken request", "Summarize: ok"]

RunDag = Callable[..., Any]


class WorkerCrash(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs, no except clause catches it."""


@pytest.fixture
def adapter(gemini_connection: EmulatorHandle) -> Iterator[GeminiBatchAdapter]:
    """The adapter as common-ai builds it from ``gemini_default``: the key and the host."""
    adapter = GeminiBatchAdapter(api_key=gemini_connection.api_key, base_url=gemini_connection.base_url)
    yield adapter
    adapter.close()


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def run_dag(
    airflow_db: None, gemini_connection: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RunDag:
    """Return ``run(body, **values)``: a DAG file ``with DAG(...)`` around ``body``, ``dag.test()``-ed.

    ``body`` is formatted with ``values`` and ``result_path`` (a ``file://`` folder of this test).
    ``dag.test()`` syncs the DAG's bundle first, so the file lives in a dags folder of its own.
    """
    from airflow import settings

    dags = tmp_path / "dags"
    dags.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(dags))

    def run(body: str, **values: Any) -> Any:
        try:
            from airflow.dag_processing.dagbag import DagBag
        except ImportError:  # Airflow < 3.1
            from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

        source = DAG_FILE.format(body=textwrap.indent(textwrap.dedent(body), "    "))
        source = source.replace("RESULT_PATH", repr(f"file://{tmp_path / 'results'}"))
        for name, value in values.items():
            source = source.replace(name.upper(), repr(value))
        (dags / "llm_batch_dag.py").write_text(source)
        bag = DagBag(str(dags))
        assert not bag.import_errors, bag.import_errors
        (dag,) = bag.dags.values()
        return dag.test()

    return run


DAG_FILE = """
from datetime import datetime

from airflow.providers.common.ai.operators.llm_batch import LLMBatchOperator
from airflow.sdk import DAG, task
from pydantic import BaseModel


class Echo(BaseModel):
    echo: str


with DAG("llm_batch_on_gemini", schedule=None, start_date=datetime(2025, 1, 1)):
{body}
"""


def states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def manifest(dag_run: Any, task_id: str) -> dict[str, Any]:
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    value = ti.xcom_pull(task_ids=task_id)
    assert isinstance(value, dict), value
    return value


def rows(manifest: dict[str, Any]) -> dict[int, dict[str, Any]]:
    path = Path(manifest["result_uri"].removeprefix("file://"))
    return {row["index"]: row for row in map(json.loads, path.read_text().splitlines())}


def the_only_job(emulator: EmulatorHandle) -> Batch:
    assert emulator.control.created_count() == 1
    (job,) = emulator.control.batches()
    return GeminiBatchHook().get_batch(job["name"])


OPERATOR = """
LLMBatchOperator(
    task_id="summarize",
    llm_conn_id="gemini_default",
    model_id=MODEL_ID,
    requests=PROMPTS,
    result_path=RESULT_PATH,
    system_prompt="Answer in one line.",
    deferrable=DEFERRABLE,
)
"""


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_llm_batch_operator_runs_on_gemini_and_writes_results_and_manifest(
    run_dag: RunDag, gemini_connection: EmulatorHandle, deferrable: bool
) -> None:
    dag_run = run_dag(OPERATOR, model_id=MODEL_ID, prompts=PROMPTS, deferrable=deferrable)

    assert dag_run.state == "success", states(dag_run)
    job = the_only_job(gemini_connection)
    assert job.model == "models/gemini-2.5-flash"
    landed = manifest(dag_run, "summarize")
    assert landed["adapter"] == "google"
    assert landed["batch_id"] == job.name
    assert landed["request_count"] == job.batch_stats.request_count == 3
    assert landed["counts"]["succeeded"] == job.batch_stats.successful_request_count == 2
    assert landed["counts"]["errored"] == job.batch_stats.failed_request_count == 1
    assert landed["terminal_reason"] == "partial"
    results = rows(landed)
    assert set(results) == {0, 1, 2}
    assert results[1]["status"] == "error"
    assert results[1]["error"]["provider_code"] == "INVALID_ARGUMENT"
    assert FAILURE_MARKER in results[1]["error"]["message"]
    for index in (0, 2):
        assert results[index]["status"] == "success"
        assert results[index]["output"] == ECHO_PREFIX + PROMPTS[index]
        assert results[index]["finish_reason"] == "STOP"
        assert results[index]["usage"]["input_tokens"] > 0
        assert results[index]["usage"]["output_tokens"] > 0
        assert results[index]["model"] == "gemini-2.5-flash"


def test_task_llm_batch_decorator_runs_on_gemini(run_dag: RunDag, gemini_connection: EmulatorHandle) -> None:
    body = """
    @task.llm_batch(llm_conn_id="gemini_default", model_id=MODEL_ID, result_path=RESULT_PATH)
    def summarize():
        return [f"Summarize ticket {number}" for number in range(4)]

    summarize()
    """
    dag_run = run_dag(body, model_id=MODEL_ID)

    assert dag_run.state == "success", states(dag_run)
    job = the_only_job(gemini_connection)
    landed = manifest(dag_run, "summarize")
    assert landed["counts"]["succeeded"] == job.batch_stats.successful_request_count == 4
    assert landed["terminal_reason"] == "succeeded"
    assert [row["output"] for _, row in sorted(rows(landed).items())] == [
        f"{ECHO_PREFIX}Summarize ticket {number}" for number in range(4)
    ]


def test_structured_output_parses_into_the_pydantic_model(run_dag: RunDag, gemini_connection: EmulatorHandle) -> None:
    body = """
    @task.llm_batch(llm_conn_id="gemini_default", model_id=MODEL_ID, result_path=RESULT_PATH, output_type=Echo)
    def classify():
        return ["Classify: printer on fire", "Classify: screen flickers"]

    classify()
    """
    from pydantic import BaseModel

    class Echo(BaseModel):
        echo: str

    dag_run = run_dag(body, model_id=MODEL_ID)

    assert dag_run.state == "success", states(dag_run)
    landed = manifest(dag_run, "classify")
    assert landed["structured"] is True
    assert landed["counts"]["succeeded"] == 2
    parsed = [Echo.model_validate(row["output"]) for _, row in sorted(rows(landed).items())]
    assert [echo.echo for echo in parsed] == [
        f"{ECHO_PREFIX}Classify: printer on fire",
        f"{ECHO_PREFIX}Classify: screen flickers",
    ]


def test_a_worker_crash_right_after_submit_ends_with_one_job(
    run_dag: RunDag, gemini_connection: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The create reaches the service, the worker dies before common-ai records the job: the retry finds it."""
    create = GeminiBatchHook.create_batch
    crashes = []

    def create_then_crash_once(self: GeminiBatchHook, *args: Any, **kwargs: Any) -> Any:
        batch = create(self, *args, **kwargs)
        if not crashes:
            crashes.append(batch.name)
            raise WorkerCrash
        return batch

    monkeypatch.setattr(GeminiBatchHook, "create_batch", create_then_crash_once)
    body = OPERATOR.replace("deferrable=DEFERRABLE,", "retries=1, retry_delay=0,")
    try:
        dag_run = run_dag(body, model_id=MODEL_ID, prompts=PROMPTS)
    except WorkerCrash:
        monkeypatch.setattr(GeminiBatchHook, "create_batch", create)  # The worker comes back.
        dag_run = run_dag(body, model_id=MODEL_ID, prompts=PROMPTS)

    assert crashes, "the first try crashed after its create"
    assert dag_run.state == "success", states(dag_run)
    job = the_only_job(gemini_connection)
    assert manifest(dag_run, "summarize")["batch_id"] == job.name == crashes[0]


def test_requests_are_checked_before_any_network_call(
    adapter: GeminiBatchAdapter, gemini_connection: EmulatorHandle
) -> None:
    from airflow.providers.common.ai.batch.output_schema import build_output_spec
    from airflow.providers.common.ai.exceptions import LLMBatchModelMismatchError

    requests: Any = [{"prompt": "a"}, {"prompt": "b", "model": "openai:gpt-5"}]
    with pytest.raises(LLMBatchModelMismatchError, match="Request 1"):
        adapter.validate_requests(
            requests, model="gemini-2.5-flash", output_spec=build_output_spec(str), idempotency_key="k" * 16
        )
    assert gemini_connection.control.requests() == []


def test_an_orphan_is_found_only_with_its_own_fingerprint(adapter: GeminiBatchAdapter) -> None:
    from airflow.providers.common.ai.batch.output_schema import build_output_spec

    spec = build_output_spec(str)
    submitted = adapter.submit(
        [{"prompt": "a"}],
        model="gemini-2.5-flash",
        idempotency_key="0123456789abcdef",
        input_fingerprint="f" * 64,
        output_spec=spec,
    )
    assert adapter.find_orphaned_batch("0123456789abcdef", "f" * 64, "2020-01-01T00:00:00+00:00") == submitted.batch_id
    assert adapter.find_orphaned_batch("0123456789abcdef", "e" * 64, "2020-01-01T00:00:00+00:00") is None
    assert adapter.find_orphaned_batch("0123456789abcdef", "f" * 64, "2999-01-01T00:00:00+00:00") is None


def test_common_ais_own_pydanticai_connection_holding_a_gemini_key_works_too(
    run_dag: RunDag, gemini_connection: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = {"conn_type": "pydanticai", "host": gemini_connection.base_url, "password": gemini_connection.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_PYDANTICAI_GEMINI", json.dumps(connection))
    body = OPERATOR.replace('"gemini_default"', '"pydanticai_gemini"')
    dag_run = run_dag(body, model_id=MODEL_ID, prompts=PROMPTS[:1], deferrable=False)

    assert dag_run.state == "success", states(dag_run)
    assert manifest(dag_run, "summarize")["batch_id"] == the_only_job(gemini_connection).name


def test_the_adapter_is_registered_for_the_google_prefix_and_both_connection_types() -> None:
    assert dispatch.get_adapter_class("gemini", MODEL_ID) is GeminiBatchAdapter
    assert dispatch.get_adapter_class("pydanticai", MODEL_ID) is GeminiBatchAdapter


def operation(state: str, **stats: str) -> Batch:
    return Batch.model_validate({"name": "batches/b", "metadata": {"state": state, "batchStats": stats}})


@pytest.mark.parametrize(
    ("state", "status", "counts"),
    [
        ("BATCH_STATE_PENDING", "in_progress", {"succeeded": 0, "errored": 0, "expired": 0, "cancelled": 0}),
        ("BATCH_STATE_RUNNING", "in_progress", {"succeeded": 1, "errored": 0, "expired": 0, "cancelled": 0}),
        ("BATCH_STATE_NEW_THING", "in_progress", {"succeeded": 1, "errored": 0, "expired": 0, "cancelled": 0}),
        ("BATCH_STATE_SUCCEEDED", "completed", {"succeeded": 1, "errored": 1, "expired": 0, "cancelled": 0}),
        ("BATCH_STATE_EXPIRED", "expired", {"succeeded": 1, "errored": 0, "expired": 2, "cancelled": 0}),
        ("BATCH_STATE_CANCELLED", "cancelled", {"succeeded": 1, "errored": 0, "expired": 0, "cancelled": 2}),
        ("BATCH_STATE_FAILED", "failed", {"succeeded": 0, "errored": 0, "expired": 0, "cancelled": 0}),
    ],
)
def test_job_states_and_batch_stats_map_to_common_ai_states_and_counts(
    state: str, status: str, counts: dict[str, int]
) -> None:
    stats = {
        "BATCH_STATE_PENDING": {"requestCount": "3", "pendingRequestCount": "3"},
        "BATCH_STATE_SUCCEEDED": {"requestCount": "2", "successfulRequestCount": "1", "failedRequestCount": "1"},
        "BATCH_STATE_FAILED": {"requestCount": "3"},
    }.get(state, {"requestCount": "3", "successfulRequestCount": "1", "pendingRequestCount": "2"})
    translated = batch_state(operation(state, **stats))
    assert (translated.status, dict(translated.counts or {})) == (status, counts)
    assert (translated.error_message is not None) is (status in ("failed", "expired", "cancelled"))


def test_an_expired_job_lands_every_request_as_expired(run_dag: RunDag, gemini_connection: EmulatorHandle) -> None:
    """An expired job has no results: common-ai counts its requests as expired from ``get_batch``'s counts."""
    gemini_connection.control.configure(outcome="EXPIRED", outcome_message="The batch expired after 48 hours.")
    dag_run = run_dag(OPERATOR, model_id=MODEL_ID, prompts=PROMPTS, deferrable=False)

    assert dag_run.state == "success", states(dag_run)
    landed = manifest(dag_run, "summarize")
    assert landed["terminal_reason"] == "expired"
    assert landed["counts"]["expired"] == the_only_job(gemini_connection).batch_stats.request_count == 3
    # common-ai writes a row per request still ("missing": no result), and the manifest says why.
    assert {row["status"] for row in rows(landed).values()} == {"missing"}


def test_an_input_over_20_mb_is_uploaded_as_a_file_and_read_back(
    adapter: GeminiBatchAdapter, gemini_connection: EmulatorHandle
) -> None:
    from airflow.providers.common.ai.batch.output_schema import build_output_spec

    spec = build_output_spec(str)
    prompts: Any = [{"prompt": f"q{index} " + "x" * 7_500_000} for index in range(3)]
    adapter.validate_requests(prompts, model="gemini-2.5-flash", output_spec=spec, idempotency_key="0123456789abcdef")
    assert gemini_connection.control.requests() == [], "validation sends nothing"
    submitted = adapter.submit(
        prompts,
        model="gemini-2.5-flash",
        idempotency_key="0123456789abcdef",
        input_fingerprint="f" * 64,
        output_spec=spec,
    )

    assert submitted.provider_input_ref is not None
    assert submitted.provider_input_ref.startswith("files/")
    assert any("/upload/" in call["path"] for call in gemini_connection.control.requests())
    items = sorted(adapter.iter_results(submitted.batch_id), key=lambda item: item.index)
    assert [(item.custom_id, item.provider_status) for item in items] == [
        (f"0123456789abcdef-{index}", "success") for index in range(3)
    ]
    assert adapter.extract_output(items[0], spec).text == f"{ECHO_PREFIX}q0 " + "x" * 57
