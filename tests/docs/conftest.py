"""Run a documentation snippet as a reader would: a DAG file in a dags folder, or a script.

``dag.test()`` syncs the DAG's bundle to the metadata DB before it runs, so a DAG snippet is written
into a dags folder of its own and both places Airflow reads that folder from are pointed at it (see
``tests/example_dags/conftest.py``). The snippets write results under the Variable
``gemini_results_dir`` when it is set, so each test points it (``AIRFLOW_VAR_GEMINI_RESULTS_DIR``)
into its own ``tmp_path``; ``gemini_connection`` points ``gemini_default`` at a clean emulator.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle


@dataclass(frozen=True)
class SnippetRun:
    """What running one snippet left behind."""

    dag_runs: list[Any]
    results_dir: Path


RunSnippet = Callable[[str, str], SnippetRun]


@pytest.fixture(scope="session")
def docs_airflow_db() -> None:
    """Migrate the session's SQLite metadata DB once (``dag.test()`` needs it)."""
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def run_snippet(
    docs_airflow_db: None, gemini_connection: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RunSnippet:
    """Return ``run(name, code)``: import ``code`` from a fresh dags folder and ``dag.test()`` every DAG it defines.

    A snippet without a DAG is a script: importing it runs it. Every DAG must end ``success`` with every
    task ``success`` (a cleanup leaf with ``trigger_rule="all_done"`` can turn a run green over a failed task).
    """
    from airflow import settings

    dags_folder = tmp_path / "dags"
    dags_folder.mkdir()
    results_dir = tmp_path / "results"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags_folder))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(dags_folder))
    monkeypatch.setenv("AIRFLOW_VAR_GEMINI_RESULTS_DIR", str(results_dir))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # Snippets that write a temporary input write here.

    def run(name: str, code: str) -> SnippetRun:
        path = dags_folder / f"{name}.py"
        path.write_text(code, encoding="utf-8")
        dag_runs = []
        for dag in import_dags(name, path, monkeypatch):
            dag_run = dag.test()
            states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
            assert dag_run.state == "success", f"DAG {dag.dag_id} ended {dag_run.state}: {states}"
            assert set(states.values()) == {"success"}, f"DAG {dag.dag_id}: not every task succeeded: {states}"
            dag_runs.append(dag_run)
        return SnippetRun(dag_runs, results_dir)

    return run


def import_dags(name: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Import ``path`` as module ``name`` and return the DAGs it defines, as Airflow's DAG processor finds them.

    That is the module's DAG globals plus the DAGs a ``with DAG(...):`` block or a ``@dag`` call registered
    without binding them to a name (Airflow's importer collects those the same way).
    """
    from airflow.sdk import DAG
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    DagContext.autoregistered_dags.clear()
    DagContext.current_autoregister_module_name = name
    try:
        spec.loader.exec_module(module)
        found = [dag for dag, _ in DagContext.autoregistered_dags]
    finally:
        DagContext.current_autoregister_module_name = None
        DagContext.autoregistered_dags.clear()
    found += [value for value in vars(module).values() if isinstance(value, DAG)]
    unique = {id(dag): dag for dag in found}
    return sorted(unique.values(), key=lambda dag: dag.dag_id)
