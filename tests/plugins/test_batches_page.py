"""The "Gemini Batches" page, through Airflow's own api-server app, its auth manager and the session's metadata DB.

Jobs live in the real emulator; a token is one Airflow's simple auth manager issued. Nothing of the
page's code is replaced: a test sees what a browser would get.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import markupsafe
import pytest
from starlette.testclient import TestClient

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.emulator._fake_model import FAILURE_MARKER
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import Batch

# Airflow 3.0's own API models use Pydantic's class-based config, and its routes a constant newer Starlette
# deprecates: Airflow's debt, not ours (as in test_plugin.py).
pytestmark = [
    pytest.mark.filterwarnings("ignore:Support for class-based `config` is deprecated"),
    pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated"),
]

PAGE = "/gemini-batch/batches"
MODEL = "gemini-2.5-flash"


def requests(*texts: str) -> list[dict[str, Any]]:
    return [
        {"key": f"k{index}", "request": {"contents": [{"role": "user", "parts": [{"text": text}]}]}}
        for index, text in enumerate(texts)
    ]


@pytest.fixture(scope="module")
def api_server() -> Iterator[TestClient]:
    """Airflow's own api-server app (core API, auth manager, plugins), as ``airflow api-server`` builds it."""
    from airflow.api_fastapi.app import create_app
    from airflow.utils import db

    db.initdb()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))  # PyJWT warns on a short key
        with TestClient(create_app(apps="core")) as client:
            yield client


def token_for(username: str, role: str = "viewer") -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return str(get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role)))


@pytest.fixture
def viewer(api_server: TestClient) -> dict[str, str]:
    """Headers of a signed-in user with the viewer role (reads DAGs, changes nothing)."""
    return {"Authorization": f"Bearer {token_for('viewer')}"}


@pytest.fixture
def hook(gemini_connection: EmulatorHandle) -> GeminiBatchHook:
    return GeminiBatchHook()


def rows(page: str) -> dict[str, str]:
    """Each job's table row, by job name."""
    found = re.findall(r'<tr class="job" data-batch="([^"]+)">(.*?)</tr>', page, flags=re.S)
    return {name: row for name, row in found}


def bar(row: str) -> dict[str, str]:
    """The progress bar's segments: their kind and width."""
    return dict(re.findall(r'class="seg (succeeded|failed|pending)" style="width: ([0-9.]+%)"', row))


class TestAccess:
    def test_an_unauthenticated_request_is_refused_with_a_way_to_sign_in(
        self, api_server: TestClient, hook: GeminiBatchHook
    ) -> None:
        hook.create_batch(MODEL, requests=requests("hello"), display_name="secret-looking job")

        for path in (PAGE, f"{PAGE}/some-id"):
            response = api_server.get(path)
            assert response.status_code == 401
            assert "secret-looking job" not in response.text
            assert "/auth/" in response.text  # a link to the auth manager's login page

    def test_a_token_airflow_did_not_sign_is_refused(self, api_server: TestClient, gemini_connection: Any) -> None:
        response = api_server.get(PAGE, headers={"Authorization": "Bearer not.a.token"})

        assert response.status_code in (401, 403)

    def test_the_session_cookie_of_the_airflow_ui_is_accepted(
        self, api_server: TestClient, hook: GeminiBatchHook
    ) -> None:
        batch = hook.create_batch(MODEL, requests=requests("hello"), display_name="cookie job")

        api_server.cookies.set("_token", token_for("viewer"))
        try:
            response = api_server.get(PAGE)
        finally:
            api_server.cookies.clear()

        assert response.status_code == 200
        assert batch.name in rows(response.text)

    def test_a_connection_of_another_type_is_never_used(
        self,
        api_server: TestClient,
        viewer: dict[str, str],
        gemini_connection: EmulatorHandle,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Its password would go to its host as an API key: the page must not even try.
        other = {"conn_type": "http", "host": gemini_connection.base_url, "password": "a-database-password"}
        monkeypatch.setenv("AIRFLOW_CONN_NOT_GEMINI", json.dumps(other))
        before = len(gemini_connection.control.requests())

        response = api_server.get(PAGE, params={"conn_id": "not_gemini"}, headers=viewer)

        assert response.status_code == 404
        assert "not of type gemini" in response.text
        assert len(gemini_connection.control.requests()) == before


class TestList:
    def test_a_running_job_shows_its_progress_bar_and_the_page_reloads_itself(
        self, api_server: TestClient, viewer: dict[str, str], hook: GeminiBatchHook, gemini_connection: EmulatorHandle
    ) -> None:
        done = hook.create_batch(MODEL, requests=requests("a", "b", f"c {FAILURE_MARKER}"), display_name="nightly")
        gemini_connection.control.configure(running_seconds=600)
        running = hook.create_batch(MODEL, requests=requests("x", "y"), display_name="still going")
        gemini_connection.control.set_state(running.name, "RUNNING")

        page = api_server.get(PAGE, headers=viewer).text
        listed = rows(page)

        assert "SUCCEEDED" in listed[done.name]
        assert bar(listed[done.name]) == {"succeeded": "66.7%", "failed": "33.3%", "pending": "0.0%"}
        assert "2 succeeded" in listed[done.name]
        assert "1 failed" in listed[done.name]
        assert "RUNNING" in listed[running.name]
        assert bar(listed[running.name])["pending"] == "100.0%"
        assert "nightly" in listed[done.name]
        assert MODEL in listed[done.name]
        assert '<meta http-equiv="refresh"' in page

    def test_a_page_of_finished_jobs_does_not_reload(
        self, api_server: TestClient, viewer: dict[str, str], hook: GeminiBatchHook
    ) -> None:
        hook.create_batch(MODEL, requests=requests("a"), display_name="finished")

        page = api_server.get(PAGE, headers=viewer).text

        assert '<meta http-equiv="refresh"' not in page

    def test_filters_by_state(
        self, api_server: TestClient, viewer: dict[str, str], hook: GeminiBatchHook, gemini_connection: EmulatorHandle
    ) -> None:
        done = hook.create_batch(MODEL, requests=requests("a"))
        failed = hook.create_batch(MODEL, requests=requests("b"))
        gemini_connection.control.set_state(failed.name, "FAILED", "quota gone")

        page = api_server.get(PAGE, params={"state": "FAILED"}, headers=viewer).text

        assert list(rows(page)) == [failed.name]
        assert done.name not in page

    def test_a_connection_is_chosen_by_id_and_an_unknown_one_is_said_plainly(
        self, api_server: TestClient, viewer: dict[str, str], hook: GeminiBatchHook, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        batch = hook.create_batch(MODEL, requests=requests("a"))
        settings = hook.settings
        other = {"conn_type": "gemini", "host": settings.base_url, "password": "a-key-the-emulator-refuses"}
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_OTHER", json.dumps(other))

        chosen = api_server.get(PAGE, params={"conn_id": "gemini_default"}, headers=viewer)
        refused = api_server.get(PAGE, params={"conn_id": "gemini_other"}, headers=viewer)
        unknown = api_server.get(PAGE, params={"conn_id": "no_such_connection"}, headers=viewer)

        assert batch.name in rows(chosen.text)
        assert refused.status_code == 502
        assert rows(refused.text) == {}
        assert "a-key-the-emulator-refuses" not in refused.text
        assert unknown.status_code == 404
        assert "no_such_connection" in unknown.text
        assert "Traceback" not in unknown.text

    def test_display_names_are_escaped(
        self, api_server: TestClient, viewer: dict[str, str], hook: GeminiBatchHook
    ) -> None:
        evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
        batch = hook.create_batch(MODEL, requests=requests("a"), display_name=evil)

        page = api_server.get(PAGE, headers=viewer).text
        job = api_server.get(f"{PAGE}/{batch.id}", headers=viewer).text

        for text in (page, job):
            assert evil not in text
            assert "<img src=x" not in text
            assert str(markupsafe.escape(evil)) in text

    def test_the_api_key_is_on_no_page_and_in_no_header(
        self, api_server: TestClient, viewer: dict[str, str], hook: GeminiBatchHook, gemini_connection: EmulatorHandle
    ) -> None:
        batch = hook.create_batch(MODEL, requests=requests("a"))
        key = gemini_connection.api_key

        answers = [
            api_server.get(PAGE, headers=viewer),
            api_server.get(f"{PAGE}/{batch.id}", headers=viewer),
            api_server.get(f"{PAGE}/no-such-job", headers=viewer),
            api_server.get(PAGE),
        ]

        for answer in answers:
            assert key not in answer.text
            assert key not in json.dumps(dict(answer.headers))
            assert key not in str(answer.url)


class TestJobPage:
    def test_a_finished_file_job_shows_its_counts_and_results_file(
        self, api_server: TestClient, viewer: dict[str, str], hook: GeminiBatchHook
    ) -> None:
        uploaded = hook.upload_records(requests("a", f"b {FAILURE_MARKER}"))
        batch = hook.create_batch(MODEL, input_file=uploaded.name, display_name="file job")

        response = api_server.get(f"{PAGE}/{batch.id}", headers=viewer)

        assert response.status_code == 200
        stats = dict(re.findall(r"<th>([a-zA-Z]+Count)</th>\s*<td>(\d+)</td>", response.text))
        assert stats == {
            "requestCount": "2",
            "successfulRequestCount": "1",
            "failedRequestCount": "1",
            "pendingRequestCount": "0",
        }
        finished = hook.get_batch(batch.name)
        assert finished.responses_file is not None
        assert finished.responses_file in response.text
        assert f'href="{PAGE}?conn_id=gemini_default"' in response.text
        assert '<meta http-equiv="refresh"' not in response.text

    def test_a_failed_job_shows_its_error(
        self, api_server: TestClient, viewer: dict[str, str], hook: GeminiBatchHook, gemini_connection: EmulatorHandle
    ) -> None:
        batch = hook.create_batch(MODEL, requests=requests("a"))
        gemini_connection.control.set_state(batch.name, "FAILED", "The <model> was overloaded")

        text = api_server.get(f"{PAGE}/{batch.id}", headers=viewer).text

        assert "FAILED" in text
        assert html.escape("The <model> was overloaded") in text

    def test_a_running_job_page_reloads_itself(
        self, api_server: TestClient, viewer: dict[str, str], hook: GeminiBatchHook, gemini_connection: EmulatorHandle
    ) -> None:
        gemini_connection.control.configure(running_seconds=600)
        batch = hook.create_batch(MODEL, requests=requests("a"))

        text = api_server.get(f"{PAGE}/{batch.id}", headers=viewer).text

        assert '<meta http-equiv="refresh"' in text

    def test_an_unknown_job_is_a_404_page(
        self, api_server: TestClient, viewer: dict[str, str], gemini_connection: Any
    ) -> None:
        response = api_server.get(f"{PAGE}/no-such-job", headers=viewer)

        assert response.status_code == 404
        assert "batches/no-such-job" in response.text


DAG_FILE = """
import pendulum
from airflow.sdk import DAG

from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator, GeminiSubmitBatchOperator

with DAG("gemini_page_creator", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
    submit = GeminiSubmitBatchOperator(
        task_id="submit",
        model="gemini-2.5-flash",
        requests=[
            {{"key": "a", "request": {{"contents": [{{"parts": [{{"text": "one two three"}}]}}]}}}},
            {{"key": "b", "request": {{"contents": [{{"parts": [{{"text": "four five"}}]}}]}}}},
        ],
        display_name="made by a dag",
        deferrable=False,
        poll_interval=0.1,
    )
    submit >> GeminiDownloadResultsOperator(
        task_id="download", batch_name=submit.output, destination={destination!r}
    )
"""


def run_creator_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Batch:
    """Run a DAG that submits a job and downloads its results, as ``dag.test()`` runs it: in the metadata DB."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    from airflow import settings

    dags = tmp_path / "dags"
    dags.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(dags))
    (dags / "gemini_page_creator.py").write_text(textwrap.dedent(DAG_FILE.format(destination=str(tmp_path / "out"))))
    bag = DagBag(str(dags))
    assert not bag.import_errors, bag.import_errors
    run = bag.dags["gemini_page_creator"].test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS"), run.state
    (batch,) = [b for b in GeminiBatchHook().list_batches() if (b.display_name or "").startswith("made by a dag")]
    return batch


def test_the_dag_run_and_task_that_created_a_job_and_its_downloaded_tokens_are_shown(
    api_server: TestClient,
    viewer: dict[str, str],
    gemini_connection: EmulatorHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = run_creator_dag(tmp_path, monkeypatch)

    row = rows(api_server.get(PAGE, headers=viewer).text)[batch.name]
    job = api_server.get(f"{PAGE}/{batch.id}", headers=viewer).text

    for text in (row, job):
        assert "gemini_page_creator" in text
        assert "submit" in text
        assert re.search(r'href="/dags/gemini_page_creator/runs/[^"]+/tasks/submit"', text)
    # The fake model counts words: prompts of 3 and 2 words, each answer "Echo: " and the prompt.
    tokens = re.search(r'<td class="tokens">([0-9,]+)</td>', row)
    assert tokens is not None
    assert int(tokens.group(1).replace(",", "")) > 0
    # The download's manifest priced it: 5 prompt and 7 output tokens of gemini-2.5-flash at half the
    # interactive price, (5 x 0.30 + 7 x 2.50) / 1e6 / 2 = $0.0000095.
    assert re.search(r'<td class="cost" title="[^"]*estimate[^"]*">\$0\.0000095</td>', row)
    assert "$0.0000095 at batch prices ($0.000019 interactively, $0.0000095 saved; an estimate, prices as of" in job


def test_a_job_without_a_priced_download_shows_a_dash_for_its_cost(
    api_server: TestClient, viewer: dict[str, str], gemini_connection: EmulatorHandle
) -> None:
    batch = GeminiBatchHook().create_batch("gemini-2.5-flash", requests=[{"contents": [{"parts": [{"text": "x"}]}]}])
    row = rows(api_server.get(PAGE, headers=viewer).text)[batch.name]
    assert re.search(r'<td class="cost"[^>]*>—</td>', row)


def test_a_user_who_may_not_read_dags_is_refused_as_by_airflows_dag_list(
    api_server: TestClient, gemini_connection: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page asks Airflow's own DAG-read check: a user refused Airflow's DAG list is refused the page."""
    from airflow.api_fastapi.app import create_app

    from ._auth_managers import DAG_BLIND_USER

    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", "tests.plugins._auth_managers.DagBlindAuthManager")
    with TestClient(create_app(apps="core")) as client:
        blind = {"Authorization": f"Bearer {token_for(DAG_BLIND_USER)}"}
        seeing = {"Authorization": f"Bearer {token_for('viewer')}"}

        assert client.get("/api/v2/dags", headers=blind).status_code == 403
        assert client.get(PAGE, headers=blind).status_code == 403
        assert client.get(f"{PAGE}/any-id", headers=blind).status_code == 403
        assert client.get(PAGE, headers=seeing).status_code == 200


def test_a_durable_jobs_title_leaves_out_its_key_which_the_job_page_shows(
    api_server: TestClient, viewer: dict[str, str], hook: GeminiBatchHook
) -> None:
    from airflow_provider_gemini_batch.idempotency import keyed_display_name

    batch = hook.create_batch(MODEL, requests=requests("a"), display_name=keyed_display_name("nightly", "0" * 16, "x"))

    row = rows(api_server.get(PAGE, headers=viewer).text)[batch.name]
    job = api_server.get(f"{PAGE}/{batch.id}", headers=viewer).text

    assert ">nightly</a>" in row
    assert "airflow:" not in row.replace(batch.name, "")
    assert "<title>nightly · Gemini Batches</title>" in job
    assert "0" * 16 in job
