"""Run the example DAGs with ``dag.test()``: a dags folder pointing at ``example_dags/`` and a migrated DB.

``dag.test()`` syncs the DAG's bundle to the metadata DB before it runs, so the DAG must live in the
configured dags folder. ``conf`` reads ``AIRFLOW__CORE__DAGS_FOLDER`` from the environment on every
access, but ``airflow.settings.DAGS_FOLDER`` is computed once when Airflow is imported, and the default
``dags-folder`` bundle takes its path from there: both are set.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle

EXAMPLE_DAGS_FOLDER = Path(__file__).resolve().parents[2] / "example_dags"
#: How long the emulator keeps each job PENDING and then RUNNING: long enough that the job is still
#: unfinished when the sensor or operator first checks it (so it defers), and for several trigger polls.
PHASE_SECONDS = 0.75
POLL_INTERVAL_SECONDS = 0.1


class RunExampleDag(Protocol):
    def __call__(self, dag_id: str, *, triggering_events: Sequence[tuple[Any, Mapping[str, Any]]] = ()) -> Any: ...


@pytest.fixture(scope="session")
def example_dags_folder() -> Iterator[Path]:
    """Make ``example_dags/`` the dags folder and migrate the session's SQLite DB, once per session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(EXAMPLE_DAGS_FOLDER))
        from airflow import settings
        from airflow.utils import db

        patch.setattr(settings, "DAGS_FOLDER", str(EXAMPLE_DAGS_FOLDER))
        db.initdb()
        yield EXAMPLE_DAGS_FOLDER


@pytest.fixture
def example_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fast polling, and results plus the demo SQLite DB in this test's own folder; return the DB path."""
    monkeypatch.setenv("GEMINI_POLL_INTERVAL", str(POLL_INTERVAL_SECONDS))
    monkeypatch.setenv("GEMINI_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("GEMINI_DEMO_DB", str(tmp_path / "demo.db"))
    monkeypatch.delenv("GEMINI_MODEL", raising=False)
    monkeypatch.delenv("GEMINI_WAIT_TIMEOUT", raising=False)
    return tmp_path / "demo.db"


@pytest.fixture
def run_example_dag(example_dags_folder: Path, example_env: Path, gemini_connection: EmulatorHandle) -> RunExampleDag:
    """Return ``run(dag_id)``: import ``example_dags/<dag_id>.py`` afresh, ``dag.test()`` it, return the DagRun.

    The file is imported at call time, so environment variables set by the test before the call (read
    when the DAG is defined, like ``GEMINI_WAIT_TIMEOUT``) take effect. Emulator jobs take
    ``PHASE_SECONDS`` in PENDING and again in RUNNING unless the test configures otherwise.
    """
    gemini_connection.control.configure(pending_seconds=PHASE_SECONDS, running_seconds=PHASE_SECONDS)

    def run(dag_id: str, *, triggering_events: Sequence[tuple[Any, Mapping[str, Any]]] = ()) -> Any:
        from airflow.sdk import DAG

        path = example_dags_folder / f"{dag_id}.py"
        spec = importlib.util.spec_from_file_location(f"example_dags_{dag_id}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = next(value for value in vars(module).values() if isinstance(value, DAG) and value.dag_id == dag_id)
        with run_triggered_by(triggering_events):
            return dag.test()

    return run


@contextlib.contextmanager
def run_triggered_by(events: Sequence[tuple[Any, Mapping[str, Any]]]) -> Iterator[None]:
    """Make the run ``dag.test()`` creates consume these asset events, as a run the scheduler starts would.

    ``events`` are ``(asset, extra)`` pairs. ``dag.test()`` makes a manual run with no triggering
    events, and takes no argument for them: the Airflow helper it creates its run with is wrapped to
    record each event (as the webhook receiver or an ``AssetWatcher`` records one) and attach it to
    the new run (and the asset, which Airflow 3.0's ``dag.test()`` does not write). The helper moved
    between Airflow 3.0 and 3.3.
    """
    if not events:
        yield
        return
    try:
        from airflow.models import dagrun as helper_module

        helper_name = "get_or_create_dagrun"
        create_run = helper_module.get_or_create_dagrun
    except AttributeError:  # Airflow < 3.1
        from airflow.models import dag as helper_module  # type: ignore[no-redef]

        helper_name = "_get_or_create_dagrun"
        create_run = helper_module._get_or_create_dagrun

    def create_triggered_run(*args: Any, session: Any, **kwargs: Any) -> Any:
        from airflow.models.asset import AssetEvent, AssetModel
        from sqlalchemy import select

        dag_run = create_run(*args, session=session, **kwargs)
        for asset, extra in events:
            model = session.scalar(select(AssetModel).where(AssetModel.name == asset.name, AssetModel.uri == asset.uri))
            if model is None:  # Airflow < 3.1: dag.test() writes no assets to the DB.
                model = AssetModel(name=asset.name, uri=asset.uri, group=asset.group)
                session.add(model)
                session.flush()
            event = AssetEvent(asset_id=model.id, extra=dict(extra))
            session.add(event)
            dag_run.consumed_asset_events.append(event)
        session.commit()
        return dag_run

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(helper_module, helper_name, create_triggered_run)
        yield
