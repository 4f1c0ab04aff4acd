"""The "Gemini Batches" page in a real browser: headless Chromium against ``airflow standalone`` and the emulator.

The deployment (``_standalone.py``) runs with real sign-in (the simple auth manager with generated
passwords, not "every caller is an admin") and the DAG of ``dags/ui/``, whose job ends with 2 of 3
requests succeeded. Beside it the test holds a second job RUNNING in the emulator. Then, in order:

- an unauthenticated request for the page is refused (401), and names no job;
- the browser signs in through Airflow's own login page as a viewer and opens the page: the running
  job's progress bar, the finished job's counts (a screenshot is saved in ``tests/artifacts/``);
  on Airflow 3.1+ also inside Airflow's UI, where its navigation entry shows it;
- the browser opens the submit task in Airflow's UI and follows its "Gemini batch" extra link to the
  job's page, which names the DAG run and task that created the job;
- no page carries the API key.

Chromium is the Debian package (``scripts/system-packages.txt``); Playwright drives it and downloads
nothing. The module takes about a minute and a half, most of it the deployment's start.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.version import Version

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from tests.deployment._standalone import DAGS_FOLDER, Deployment, dag_runs, run_standalone, wait_for

pytestmark = pytest.mark.slow

DAG_ID = "gemini_ui"
PAGE = "/gemini-batch/batches"
# How the page names the task that created a job: the DAG id, an angle quote, the task id.
CREATED_BY = f"{DAG_ID} \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} submit"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
AIRFLOW_VERSION = importlib.metadata.version("apache-airflow")
# Airflow 3.1 brought plugins' navigation entries (external views); 3.0 reaches the page by its URL.
HAS_NAV_ENTRIES = Version("3.1") <= Version(AIRFLOW_VERSION)
RUN_LIMIT_SECONDS = 90
# Page loads and the sign-in, in milliseconds (Playwright's unit); the UI's first load is the slowest.
BROWSER_TIMEOUT_MS = 30_000


@pytest.fixture
def standalone(tmp_path: Path, gemini_emulator: EmulatorHandle) -> Iterator[Deployment]:
    """``airflow standalone`` with real sign-in: users ``admin`` and ``viewer``, passwords generated."""
    results = tmp_path / "results"
    results.mkdir()
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "GEMINI_RESULTS_DIR": str(results),
    }
    with run_standalone(tmp_path, gemini_emulator, (DAG_ID,), env, dags_folder=DAGS_FOLDER / "ui") as deployment:
        yield deployment


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} missing: run scripts/system-deps.sh")
def test_a_viewer_signs_in_and_sees_progress_counts_and_a_tasks_job(
    standalone: Deployment, gemini_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    finished = _run_the_dag(standalone)
    running = _a_running_job(gemini_emulator)
    refused = httpx.get(f"{standalone.api_url}{PAGE}", timeout=30)
    assert refused.status_code == 401
    assert finished not in refused.text

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"gemini-batches-airflow-{AIRFLOW_VERSION}.png"
    seen: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 900},
        )
        browser.set_default_timeout(BROWSER_TIMEOUT_MS)
        try:
            page = browser.new_page()
            page.on("response", lambda response: seen.append(response.url))
            _sign_in(page, standalone)

            page.goto(f"{standalone.api_url}{PAGE}")
            running_row = page.locator(f'tr.job[data-batch="{running}"]')
            finished_row = page.locator(f'tr.job[data-batch="{finished}"]')
            running_row.wait_for()
            assert running_row.locator(".state").inner_text() == "RUNNING"
            assert running_row.locator(".seg.pending").get_attribute("style") == "width: 100.0%"
            assert running_row.locator(".counts").inner_text() == "0 succeeded · 0 failed · 2 pending of 2"
            assert finished_row.locator(".state").inner_text() == "SUCCEEDED"
            assert finished_row.locator(".counts").inner_text() == "2 succeeded · 1 failed · 0 pending of 3"
            assert finished_row.locator(".seg.succeeded").get_attribute("style") == "width: 66.7%"
            assert CREATED_BY in finished_row.inner_text()
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"\nScreenshot of the Gemini Batches page: {screenshot}")
            listed = page.content()
            if HAS_NAV_ENTRIES:  # Inside Airflow's UI, from its navigation entry (an iframe of the page).
                page.goto(f"{standalone.api_url}/")
                page.get_by_role("button", name="Browse").click()
                page.get_by_role("menuitem", name="Gemini Batches").click()
                page.wait_for_url(re.compile(r".*/plugin/gemini-batches$"))
                page.frame_locator("iframe").locator(f'tr.job[data-batch="{finished}"]').wait_for()
                page.screenshot(path=str(ARTIFACTS / f"gemini-batches-in-airflow-ui-{AIRFLOW_VERSION}.png"))

            job_page = _follow_the_extra_link(page, standalone, finished)
            assert "2 succeeded · 1 failed · 0 pending of 3" in job_page.locator(".counts").inner_text()
            assert CREATED_BY in job_page.inner_text("body")
            job_text = job_page.content()
        finally:
            browser.close()

    for text in (listed, job_text, refused.text):
        assert gemini_emulator.api_key not in text
    assert not [url for url in seen if gemini_emulator.api_key in url]
    print(f"Browser test on Airflow {AIRFLOW_VERSION}: {time.monotonic() - started:.0f} s after the deployment was up")


def _run_the_dag(standalone: Deployment) -> str:
    """Trigger ``gemini_ui``, wait for its run to succeed, and return its job's name."""
    with httpx.Client(base_url=standalone.api_url, timeout=30, headers=standalone.api_headers()) as api:
        response = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"dag_run_id": "ui_run", "logical_date": None})
        assert response.status_code == 200, response.text[:300]

        def succeeded() -> bool | None:
            runs = dag_runs(standalone.database, DAG_ID) or {}
            state = runs["ui_run"]["state"] if "ui_run" in runs else None
            if state == "failed":
                pytest.fail(f"The run failed.\n{standalone.diagnostics(DAG_ID)}")
            return True if state == "success" else None

        wait_for(standalone, succeeded, RUN_LIMIT_SECONDS, "the gemini_ui run to succeed", DAG_ID)
        xcom = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/ui_run/taskInstances/submit/xcomEntries/return_value")
        assert xcom.status_code == 200, xcom.text[:300]
        return str(xcom.json()["value"]).strip('"')


def _a_running_job(emulator: EmulatorHandle) -> str:
    """A second job, held RUNNING in the emulator: the page shows it while it runs."""
    hook = GeminiBatchHook.for_api_key(emulator.api_key, emulator.base_url, source="the UI test")
    texts = ("one", "two")
    batch = hook.create_batch(
        "gemini-2.5-flash",
        requests=[{"key": text, "request": {"contents": [{"parts": [{"text": text}]}]}} for text in texts],
        display_name="still going",
    )
    emulator.control.set_state(batch.name, "RUNNING")
    return batch.name


def _sign_in(page: Any, standalone: Deployment) -> None:
    """Sign in as ``viewer`` through the auth manager's own login page, reached from the page's sign-in link."""
    page.goto(f"{standalone.api_url}{PAGE}")
    page.locator("#sign-in").click()
    page.wait_for_url(re.compile(r".*/auth/login.*"))
    page.locator('input[name="username"]').fill("viewer")
    page.locator('input[name="password"]').fill(standalone.password("viewer"))
    page.locator('button[type="submit"]').click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.wait_for_load_state("networkidle")


def _follow_the_extra_link(page: Any, standalone: Deployment, batch_name: str) -> Any:
    """Open the submit task in Airflow's UI, click its "Gemini batch" link; return the job's page it opened."""
    with httpx.Client(base_url=standalone.api_url, timeout=30, headers=standalone.api_headers()) as api:
        listed = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/ui_run/taskInstances/submit/links")
    assert listed.status_code == 200, listed.text[:300]
    print(f"Airflow's API lists the submit task's links: {listed.json()}")
    page.goto(f"{standalone.api_url}/dags/{DAG_ID}/runs/ui_run/tasks/submit")
    page.get_by_text("Details", exact=True).click()  # The task's "Extra Links" are on its Details tab.
    link = page.get_by_role("link", name="Gemini batch")
    try:
        link.wait_for()
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"task-page-airflow-{AIRFLOW_VERSION}.png"), full_page=True)
        raise
    assert link.get_attribute("href").endswith(f"{PAGE}/{batch_name.removeprefix('batches/')}?conn_id=gemini_default")
    if link.get_attribute("target") == "_blank":  # Airflow 3.0's UI opens extra links in a new tab
        with page.expect_popup() as popup:
            link.click()
        opened = popup.value
    else:  # Airflow 3.1+ opens a link to its own origin in the same tab
        link.click()
        opened = page
    opened.wait_for_url(re.compile(rf".*{PAGE}/.*"))
    opened.locator(".counts").wait_for()
    return opened
