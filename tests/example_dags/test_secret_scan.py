"""The API key never appears anywhere a user or an attacker could read it.

Every example DAG runs against an emulator that demands a recognisable fake key; then the test
searches everything those runs left behind: the captured task and trigger output, the log folder,
every column of every table of the metadata DB (XCom, rendered template fields, serialized trigger
kwargs, ...), the output of ``airflow connections list``, and the message, repr and traceback of
every exception the hook raises in its failure modes. The key must appear zero times.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_provider_gemini_batch.assets import CompletedBatch, gemini_batch_completed
from airflow_provider_gemini_batch.emulator import EmulatorControl, EmulatorHandle, run_emulator
from airflow_provider_gemini_batch.exceptions import GeminiBatchError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook

from ..secret_scan import searchable
from .conftest import RunExampleDag
from .test_example_dags import COMMON_AI_EXAMPLE, COMMON_AI_INSTALLED

FAKE_KEY = "AIzaFAKE-scan-me-7f3a9c1b2d4e"
# The event-driven DAG's job finishes while the others run; then the results DAG downloads it.
EXAMPLE_DAG_IDS = (
    "gemini_batch_event_driven",
    "gemini_batch_nightly",
    "gemini_embeddings_batch",
    "gemini_batch_cleanup",
    "gemini_batch_sharded",
)


@pytest.fixture(scope="module")
def keyed_emulator() -> Iterator[EmulatorHandle]:
    with run_emulator(api_key=FAKE_KEY) as base_url, EmulatorControl(base_url) as control:
        yield EmulatorHandle(base_url=base_url, api_key=FAKE_KEY, control=control)


@pytest.fixture
def gemini_connection(keyed_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """Overrides the plugin's fixture: the example DAGs talk to the emulator with the fake key."""
    keyed_emulator.control.reset()
    connection = {"conn_type": "gemini", "host": keyed_emulator.base_url, "password": FAKE_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(connection))
    return keyed_emulator


def metadata_db_hits() -> list[str]:
    """Every table.column of the metadata DB whose value contains the key."""
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    hits = []
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names come from sqlite_master
            columns = [description[0] for description in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    if FAKE_KEY.encode() in raw:
                        hits.append(f"{table}.{column}")
    return hits


def log_folder_hits() -> list[str]:
    home = Path(os.environ["AIRFLOW_HOME"])
    return [
        str(path)
        for path in home.rglob("*")
        if path.is_file() and path.suffix != ".db" and FAKE_KEY.encode() in path.read_bytes()
    ]


def listing_without_airflows_own_password_columns(stdout: str) -> str:
    """The ``connections list`` output to search.

    Airflow 3.3's CLI leaves passwords out of the listing. Airflow 3.0's prints every connection's
    ``password`` and ``get_uri`` columns in clear, for any connection type: nothing a provider can
    change. There those two columns are dropped and every other column is still searched.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    if AIRFLOW_V_3_3_PLUS:
        return stdout
    payload = next(line for line in stdout.splitlines() if line.startswith("[{"))
    entries = [{k: v for k, v in entry.items() if k not in ("password", "get_uri")} for entry in json.loads(payload)]
    return json.dumps(entries)


def failure_messages(base_url: str, control: EmulatorControl) -> Iterator[str]:
    """Drive the hook into each failure family and yield everything its exception shows."""
    request = [{"key": "k", "request": {"contents": [{"parts": [{"text": "x"}]}]}}]
    scenarios: list[tuple[str, Callable[[GeminiBatchHook], Any]]] = [
        ("not found", lambda hook: hook.get_batch("batches/missing")),
        ("forbidden file", lambda hook: hook.get_file("files/missing")),
        (
            "rate limited",
            lambda hook: (control.inject_fault("status", status=429, count=9), hook.get_batch("batches/x")),
        ),
        (
            "server error",
            lambda hook: (control.inject_fault("status", status=500, count=9), hook.list_batches().__next__()),
        ),
        (
            "ambiguous create",
            lambda hook: (
                control.inject_fault("drop_after_create"),
                hook.create_batch("gemini-2.5-flash", requests=request),
            ),
        ),
        ("bad model", lambda hook: hook.create_batch("bad?model", requests=request)),
    ]
    for name, scenario in scenarios:
        control.clear_faults()
        hook = GeminiBatchHook(retry_base_delay=0.001)
        with pytest.raises(GeminiBatchError) as raised:
            scenario(hook)
        hook.close()
        error = raised.value
        yield f"{name}: {error} {error!r} {''.join(traceback.format_exception(error))}"
    control.clear_faults()


def test_the_key_appears_nowhere(
    run_example_dag: RunExampleDag,
    gemini_connection: EmulatorHandle,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for dag_id in EXAMPLE_DAG_IDS:
        assert str(run_example_dag(dag_id).state) == "success", dag_id
    # The results DAG runs on an asset event: one naming the event-driven DAG's job, as a webhook would.
    event_driven_job = next(
        b["name"] for b in gemini_connection.control.batches() if "support-triage" in b["displayName"]
    )
    announced = CompletedBatch(batch=event_driven_job, state="BATCH_STATE_SUCCEEDED").as_extra()
    results_run = run_example_dag(
        "gemini_batch_results_on_completion", triggering_events=[(gemini_batch_completed(), announced)]
    )
    assert str(results_run.state) == "success"
    if COMMON_AI_INSTALLED:  # common-ai polls every 30 s at least: its job is done at once.
        gemini_connection.control.configure(pending_seconds=0, running_seconds=0)
        assert str(run_example_dag(COMMON_AI_EXAMPLE).state) == "success"
    messages = list(failure_messages(gemini_connection.base_url, gemini_connection.control))
    # One Fernet key for both CLI calls, so the stored password is encrypted and readable back.
    cli_env = {**os.environ, "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode()}
    subprocess.run(
        [
            str(Path(sys.executable).with_name("airflow")),
            "connections",
            "add",
            "gemini_scan",
            "--conn-type",
            "gemini",
            "--conn-password",
            FAKE_KEY,
            "--conn-host",
            gemini_connection.base_url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
        env=cli_env,
    )
    listing = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "connections", "list", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env,
    )
    assert listing.returncode == 0, listing.stderr[-3000:]
    output = capfd.readouterr()

    assert "gemini_scan" in listing.stdout, "the listing really covers a connection holding the key"
    assert len(messages) == 6
    assert FAKE_KEY not in listing_without_airflows_own_password_columns(listing.stdout)
    assert [m for m in messages if FAKE_KEY in m] == []
    assert FAKE_KEY not in searchable(output.out)
    assert FAKE_KEY not in searchable(output.err)
    assert log_folder_hits() == []
    assert metadata_db_hits() == [], "the connection table is encrypted; nothing else may hold the key"


def test_the_secret_masker_knows_the_key(gemini_connection: EmulatorHandle) -> None:
    from airflow.providers.common.compat.sdk import redact

    GeminiBatchHook().settings  # noqa: B018 - reading the connection registers the key with the masker
    assert FAKE_KEY not in str(redact(f"the key is {FAKE_KEY}"))
