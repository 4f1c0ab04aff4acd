"""``GET /batches`` and ``GET /batches/{id}``: the "Gemini Batches" pages, a connection's recent jobs and one job.

Rendered on the server from Jinja templates (``templates/``, autoescaped: display names and error
messages are user and service data) with no front-end build. Only a signed-in Airflow user who may
read DAGs sees them (``_page_access``). The jobs are read through ``GeminiBatchHook`` on the server;
the API key stays in the connection and is never put on a page, in a URL or in a header.

Only connections of type ``gemini`` are used: a page must not make the api-server send another
connection's password to that connection's host.
"""

from __future__ import annotations

import itertools
import logging
from contextlib import closing
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse

from airflow_provider_gemini_batch.exceptions import GeminiBatchError, GeminiBatchNotFoundError
from airflow_provider_gemini_batch.idempotency import key_in_display_name
from airflow_provider_gemini_batch.models import Batch, BatchState
from airflow_provider_gemini_batch.plugins._job_view import COST_NOTE, JobView
from airflow_provider_gemini_batch.plugins._page_access import PageRefused, require_dag_reader
from airflow_provider_gemini_batch.settings import (
    BATCHES_PAGE_JOBS,
    BATCHES_PAGE_REFRESH_SECONDS,
    BATCHES_PAGE_SCAN_LIMIT,
    PLUGIN_URL_PREFIX,
)

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.hooks import GeminiBatchHook

__all__ = ["refused_page", "router"]

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "gemini_default"
STATES = tuple(state.short_name for state in BatchState if state is not BatchState.UNSPECIFIED)

router = APIRouter(dependencies=[Depends(require_dag_reader)])


class _PageError(Exception):
    """A page that cannot be shown, said plainly: an unknown connection, an unknown job, the service failing."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@router.get("/batches", response_class=HTMLResponse)
def list_page(request: Request, conn_id: str = DEFAULT_CONN_ID, state: str = "") -> HTMLResponse:
    """The connection's most recent jobs, optionally only those in ``state``."""
    wanted = state.upper() if state.upper() in STATES else ""
    context: dict[str, Any] = {
        "conn_id": conn_id,
        "state": wanted,
        "states": STATES,
        "jobs": [],
        "connections": [conn_id],
        "limit": BATCHES_PAGE_JOBS,
        "cost_note": COST_NOTE,
        "error": None,
    }
    try:
        with closing(_hook(conn_id)) as hook:
            batches = _recent(hook, wanted)
    except _PageError as error:
        context["error"] = error.message
        return _render(request, "batches.html", context, status_code=error.status_code)
    jobs = _with_airflow_records(batches)
    context.update(jobs=jobs, connections=_connection_choices(conn_id), refresh=any(job.running for job in jobs))
    return _render(request, "batches.html", context)


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def job_page(request: Request, batch_id: str, conn_id: str = DEFAULT_CONN_ID) -> HTMLResponse:
    """One job: its ``batchStats``, error, results file, and links."""
    name = f"batches/{batch_id}"
    context: dict[str, Any] = {"conn_id": conn_id, "name": name, "job": None, "error": None}
    try:
        with closing(_hook(conn_id)) as hook:
            batch = _get(hook, name)
    except _PageError as error:
        context["error"] = error.message
        return _render(request, "batch.html", context, status_code=error.status_code)
    (job,) = _with_airflow_records([batch])
    context.update(job=job, refresh=job.running, cost_note=COST_NOTE, stats=batch.batch_stats)
    return _render(request, "batch.html", context)


def refused_page(request: Request, refused: PageRefused) -> HTMLResponse:
    """The answer to a request that may not see a page: why, and a link to sign in (``_page_access``)."""
    context = {"reason": refused.reason, "login_url": _login_url(request), "status_code": refused.status_code}
    response = _render(request, "refused.html", context, status_code=refused.status_code)
    if refused.status_code == status.HTTP_401_UNAUTHORIZED:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


# -- reading -------------------------------------------------------------------------------------


def _hook(conn_id: str) -> GeminiBatchHook:
    from airflow.models.connection import Connection
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    from airflow_provider_gemini_batch.hooks import GeminiBatchHook

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        raise _PageError(status.HTTP_404_NOT_FOUND, f"There is no connection {conn_id!r}.") from None
    if conn.conn_type != "gemini":
        raise _PageError(status.HTTP_404_NOT_FOUND, f"Connection {conn_id!r} is not of type gemini.")
    return GeminiBatchHook(gemini_conn_id=conn_id)


def _recent(hook: GeminiBatchHook, state: str) -> list[Batch]:
    """Up to ``BATCHES_PAGE_JOBS`` newest jobs (in ``state`` if given), reading at most ``BATCHES_PAGE_SCAN_LIMIT``."""
    try:
        listed = itertools.islice(hook.list_batches(), BATCHES_PAGE_SCAN_LIMIT)
        matching = (batch for batch in listed if not state or batch.state.short_name == state)
        batches = list(itertools.islice(matching, BATCHES_PAGE_JOBS))
    except GeminiBatchError as error:  # Messages never carry the key (exceptions.py).
        log.warning("Gemini Batches page: listing jobs of %r failed: %s", hook.gemini_conn_id, error)
        raise _PageError(status.HTTP_502_BAD_GATEWAY, f"The Gemini API could not list jobs: {error}") from None
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(batches, key=lambda batch: batch.create_time or oldest, reverse=True)


def _get(hook: GeminiBatchHook, name: str) -> Batch:
    try:
        batch = hook.get_batch(name)
    except GeminiBatchNotFoundError:
        raise _PageError(status.HTTP_404_NOT_FOUND, f"The Gemini API knows no job {name}.") from None
    except GeminiBatchError as error:
        log.warning("Gemini Batches page: reading %s failed: %s", name, error)
        raise _PageError(status.HTTP_502_BAD_GATEWAY, f"The Gemini API could not read {name}: {error}") from None
    return batch


def _with_airflow_records(batches: list[Batch]) -> list[JobView]:
    """Each job with the task that created it and its downloaded tokens, when Airflow's DB knows them."""
    from airflow_provider_gemini_batch.plugins._airflow_records import creators_by_key, downloads_by_batch

    times = [batch.create_time for batch in batches if batch.create_time is not None]
    since = min(times) if times else None
    keys = {batch.name: key_in_display_name(batch.display_name) for batch in batches}
    creators = creators_by_key({key for key in keys.values() if key}, since)
    downloads = downloads_by_batch([batch.name for batch in batches if batch.state.is_terminal], since)
    views = []
    for batch in batches:
        downloaded = downloads.get(batch.name)
        views.append(
            JobView(
                batch,
                creator=creators.get(keys[batch.name] or ""),
                usage=downloaded.usage if downloaded else {},
                cost_estimate=downloaded.cost if downloaded else None,
            )
        )
    return views


def _connection_choices(current: str) -> list[str]:
    from airflow_provider_gemini_batch.plugins._airflow_records import gemini_connection_ids

    return sorted({current, *gemini_connection_ids()})


# -- rendering -----------------------------------------------------------------------------------


@cache
def _templates() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,  # Every value is escaped unless a template says otherwise; none does.
        undefined=StrictUndefined,
    )


def _render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    plugin_root = request.scope.get("root_path", "") or PLUGIN_URL_PREFIX
    page = (
        _templates()
        .get_template(template)
        .render(
            plugin_root=plugin_root,
            airflow_root=plugin_root.removesuffix(PLUGIN_URL_PREFIX),
            refresh_seconds=BATCHES_PAGE_REFRESH_SECONDS,
            now=datetime.now(timezone.utc),
            **{"refresh": False, **context},
        )
    )
    response = HTMLResponse(page, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _login_url(request: Request) -> str:
    airflow_root = (request.scope.get("root_path", "") or PLUGIN_URL_PREFIX).removesuffix(PLUGIN_URL_PREFIX)
    try:
        from airflow.api_fastapi.app import get_auth_manager

        login = str(get_auth_manager().get_url_login(next_url=str(request.url)))
    except Exception:  # No auth manager set up (a bare test app): Airflow's root leads to its login.
        log.debug("No auth manager to ask for the login URL", exc_info=True)
        return f"{airflow_root}/"
    return login if "://" in login else f"{airflow_root}{login}"
