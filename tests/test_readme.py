"""The README's "A DAG to copy", pasted into a fresh ``dags/`` folder, runs to success under ``dag.test()``.

The snippet is read out of README.md at test time, so the README cannot drift from what works. The
only set-up is what a user does: a ``gemini_default`` connection in the environment (here pointing
at the emulator, as the README's "Try it" says).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook

README = Path(__file__).resolve().parents[1] / "README.md"


def dag_to_copy() -> str:
    """The first ```python block under the "A DAG to copy" heading."""
    text = README.read_text()
    section = text.split("\n## A DAG to copy\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README.md has no python block under '## A DAG to copy'"
    return match.group(1)


def results_folders(snippet: str) -> list[Path]:
    """Local folders the snippet writes results under (the part of each destination before a template)."""
    return [Path(found.split("{{")[0]) for found in re.findall(r'destination="([^"]+)"', snippet)]


@pytest.mark.slow
def test_the_readme_dag_runs_as_pasted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gemini_connection: EmulatorHandle
) -> None:
    snippet = dag_to_copy()
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "nightly_summaries.py").write_text(snippet)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    from airflow import settings
    from airflow.utils import db

    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    monkeypatch.setattr(settings, "DAGS_FOLDER", str(dags))
    db.initdb()
    folders = results_folders(snippet)
    assert folders, "the README's DAG writes its results somewhere local"
    before = {path for folder in folders for path in folder.rglob("*")}  # a user's own results stay
    bag = DagBag(str(dags))
    assert not bag.import_errors, bag.import_errors
    (dag,) = bag.dags.values()
    try:
        run = dag.test()
        assert str(run.state) in ("success", "DagRunState.SUCCESS"), run.state
        written = [path for folder in folders for path in folder.rglob("*.jsonl*") if path not in before]
        assert written, f"no new results file under {folders}"
        assert gemini_connection.control.created_count() == 1
        uploaded = [file.name for file in GeminiBatchHook().list_files() if file.display_name == "requests.jsonl"]
        assert uploaded == [], "the DAG deletes the input it uploaded (only the job's results file remains)"
    finally:  # Remove what this run wrote, newest first (files before their folders), and nothing else.
        created = {path for folder in folders for path in folder.rglob("*")} - before
        for path in sorted(created, key=lambda path: len(path.parts), reverse=True):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
