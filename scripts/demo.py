"""``make demo``: run the nightly example DAG end to end in real Airflow against the local emulator.

What it does:

1. Starts the Gemini Batch emulator in-process on a free loopback port; its jobs stay PENDING for 1 s
   and RUNNING for 1 s, so the sensor really defers and its trigger really polls.
2. Sets up a throwaway ``AIRFLOW_HOME`` in ``.airflow-demo/`` (SQLite, recreated on every run) with
   ``example_dags/`` as the dags folder.
3. Runs ``example_dags/gemini_batch_nightly.py`` with ``dag.test()``: upload, submit, a deferred sensor,
   download, and a load into SQLite.
4. Prints one line per task, the loaded ``ticket_summaries`` rows and a one-line summary. Exits 1 if the
   DAG run did not succeed.

Run it with ``make demo`` or ``.venv/bin/python scripts/demo.py``. Environment variables:

- ``GEMINI_DEMO_REAL=1``: skip the emulator and run the same, unchanged DAG against the real Gemini API.
  It needs a ``gemini_default`` connection: set ``AIRFLOW_CONN_GEMINI_DEFAULT`` (e.g.
  ``'{"conn_type": "gemini", "password": "<API key>"}'``) or just ``GEMINI_API_KEY``. A real batch
  takes minutes to hours (the target is 24 h), and the demo polls every 30 s unless told otherwise::

      GEMINI_DEMO_REAL=1 GEMINI_API_KEY=... .venv/bin/python scripts/demo.py

- ``GEMINI_POLL_INTERVAL``, ``GEMINI_MODEL``: passed through to the DAG.
- ``GEMINI_DEMO_VERBOSE=1``: keep Airflow's INFO logs (by default only warnings are shown).

Results stay in ``.airflow-demo/`` until the next run: ``gemini_demo.db`` (SQLite) and ``results/*.jsonl``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = ROOT / "example_dags"
DAG_FILE = DAGS_FOLDER / "gemini_batch_nightly.py"
DAG_ID = "gemini_batch_nightly"
DEMO_HOME = ROOT / ".airflow-demo"
DEMO_DB = DEMO_HOME / "gemini_demo.db"
EMULATOR_API_KEY = "demo-emulator-key"  # The emulator's own; never a real key.
PHASE_SECONDS = 1.0  # How long emulator jobs stay PENDING, then RUNNING.
SUMMARY_WIDTH = 60


def main() -> int:
    """Run the demo; return the process exit code."""
    real = os.environ.get("GEMINI_DEMO_REAL") == "1"
    if real and not _real_connection_configured():
        print("GEMINI_DEMO_REAL=1 needs AIRFLOW_CONN_GEMINI_DEFAULT or GEMINI_API_KEY.", file=sys.stderr)
        return 2
    _prepare_airflow_home(poll_interval="30" if real else "0.5")
    with _gemini_service(real) as where:
        print(f"Gemini API: {where}")
        print(f"Airflow home: {DEMO_HOME.relative_to(ROOT)} (SQLite); dags folder: {DAGS_FOLDER.relative_to(ROOT)}")
        print(f"Running {DAG_ID} with dag.test() ...\n")
        dag_run = _run_dag()
    _print_task_outcomes(dag_run)
    if dag_run.state != "success":
        print(f"\nThe DAG run ended {dag_run.state}; see the log above.", file=sys.stderr)
        return 1
    _print_summaries(dag_run.run_id)
    return 0


def _real_connection_configured() -> bool:
    if os.environ.get("AIRFLOW_CONN_GEMINI_DEFAULT"):
        return True
    api_key = os.environ.get("GEMINI_API_KEY")
    if not api_key:
        return False
    os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"] = json.dumps({"conn_type": "gemini", "password": api_key})
    return True


def _prepare_airflow_home(*, poll_interval: str) -> None:
    """Point Airflow at a fresh SQLite home; must run before anything imports ``airflow``."""
    shutil.rmtree(DEMO_HOME, ignore_errors=True)
    DEMO_HOME.mkdir(parents=True)
    from cryptography.fernet import Fernet

    verbose = os.environ.get("GEMINI_DEMO_VERBOSE") == "1"
    os.environ.update(
        {
            "AIRFLOW_HOME": str(DEMO_HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{DEMO_HOME / 'airflow.db'}",
            # A key for this throwaway DB only, so that Airflow does not warn about storing values unencrypted.
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO" if verbose else "WARNING",
            "GEMINI_RESULTS_DIR": str(DEMO_HOME / "results"),
            "GEMINI_DEMO_DB": str(DEMO_DB),
        }
    )
    os.environ.setdefault("GEMINI_POLL_INTERVAL", poll_interval)
    from airflow.utils import db

    db.initdb()


@contextlib.contextmanager
def _gemini_service(real: bool) -> Iterator[str]:
    """Yield a description of the API the DAG talks to; start (and stop) the emulator unless ``real``."""
    if real:
        yield "the real Gemini API (connection gemini_default)"
        return
    from airflow_provider_gemini_batch.emulator import run_emulator

    with run_emulator(
        api_key=EMULATOR_API_KEY, pending_seconds=PHASE_SECONDS, running_seconds=PHASE_SECONDS
    ) as base_url:
        connection = {"conn_type": "gemini", "host": base_url, "password": EMULATOR_API_KEY}
        os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"] = json.dumps(connection)
        yield f"emulator at {base_url} (jobs stay PENDING {PHASE_SECONDS:g} s, then RUNNING {PHASE_SECONDS:g} s)"


def _run_dag() -> Any:
    """Import the DAG file the way the dags folder holds it and run it once with ``dag.test()``."""
    spec = importlib.util.spec_from_file_location(DAG_FILE.stem, DAG_FILE)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"Cannot import {DAG_FILE}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from airflow.sdk import DAG

    dag = next(value for value in vars(module).values() if isinstance(value, DAG) and value.dag_id == DAG_ID)
    return dag.test()


def _print_task_outcomes(dag_run: Any) -> None:
    """One line per task, in the order they ran; a deferred task says so (from Airflow's audit log)."""
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        deferred = set(
            session.scalars(
                select(Log.task_id).where(
                    Log.dag_id == dag_run.dag_id, Log.run_id == dag_run.run_id, Log.event == "deferred"
                )
            )
        )
    task_instances = sorted(dag_run.get_task_instances(), key=lambda ti: (ti.start_date is None, ti.start_date))
    for ti in task_instances:
        duration = f"{ti.duration:5.1f} s" if ti.duration is not None else "      "
        note = "  (deferred: waited in the triggerer, no worker slot held)" if ti.task_id in deferred else ""
        print(f"  {ti.task_id:<18} {ti.state!s:<16} {duration}{note}")


def _print_summaries(run_id: str) -> None:
    """The rows this run loaded into ``ticket_summaries``, then totals."""
    with closing(sqlite3.connect(DEMO_DB)) as connection:
        rows = connection.execute(
            "SELECT ticket_id, status, summary, tokens FROM ticket_summaries WHERE run_id = ? ORDER BY ticket_id",
            (run_id,),
        ).fetchall()
    print(f"\nticket_summaries ({DEMO_DB.relative_to(ROOT)}):\n")
    print(f"  {'ticket':<8} {'status':<10} summary")
    print(f"  {'-' * 8} {'-' * 10} {'-' * SUMMARY_WIDTH}")
    for ticket_id, status, summary, _tokens in rows:
        print(f"  {ticket_id:<8} {status:<10} {_shorten(summary or '')}")
    succeeded = sum(1 for row in rows if row[1] == "succeeded")
    tokens = sum(row[3] for row in rows)
    print(f"\n{succeeded} succeeded, {len(rows) - succeeded} failed, {tokens} tokens.")


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SUMMARY_WIDTH else flat[: SUMMARY_WIDTH - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
