"""Who may see the "Gemini Batches" pages: a signed-in Airflow user allowed to read DAGs, checked by Airflow.

The check is Airflow's own: the JWT is resolved to a user by the auth manager, and
``requires_access_dag("GET")``, the check of Airflow's ``GET /api/v2/dags``, decides. Nothing here
decides who may read.

Where the token comes from, for a page a browser navigates to:

- the ``Authorization: Bearer`` header, as the REST API takes it;
- else the ``_token`` cookie the auth manager's login sets. Airflow 3.1+ keeps it, so a page
  navigation carries it. Airflow 3.0's UI moves the token into ``localStorage`` and deletes the
  cookie, where no server page can read it: the refusal page then copies it, with a few lines of
  inline script, into a cookie scoped to this plugin's path, and reloads (``refused.html``).

A request with no token, or an expired or foreign one, gets the 401 refusal page (a link to the
auth manager's login, which comes back here); a user who cannot read DAGs gets 403.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import HTTPException, Request, status

__all__ = ["PageRefused", "require_dag_reader"]

log = logging.getLogger(__name__)

COOKIE_NAME = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN


class PageRefused(Exception):
    """The request may not see the page: ``status_code`` 401 (not signed in) or 403 (may not read DAGs)."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


async def require_dag_reader(request: Request) -> Any:
    """Return the signed-in user if Airflow lets them read DAGs; raise :class:`PageRefused` otherwise."""
    from starlette.concurrency import run_in_threadpool

    token = _bearer_token(request) or request.cookies.get(COOKIE_NAME)
    if not token:
        raise PageRefused(status.HTTP_401_UNAUTHORIZED, "Sign in to Airflow to see this page.")
    try:
        user = await _resolve_user(token)
    except HTTPException as refused:
        log.info("Gemini Batches page refused: %s", refused.detail)
        raise PageRefused(
            status.HTTP_401_UNAUTHORIZED, "Your Airflow session has expired or is not valid: sign in again."
        ) from None
    try:
        await run_in_threadpool(_airflow_dag_read_check(), request, user)
    except HTTPException:
        raise PageRefused(
            status.HTTP_403_FORBIDDEN, "You may not read DAGs in this Airflow, so you may not see its batch jobs."
        ) from None
    return user


def _bearer_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


async def _resolve_user(token: str) -> Any:
    """The user a token names, as Airflow's API resolves it (401 / 403 ``HTTPException`` otherwise)."""
    from airflow.api_fastapi.core_api import security

    # Airflow 3.1+ resolves a token with resolve_user_from_token; 3.0's get_user takes the token itself.
    resolve: Any = getattr(security, "resolve_user_from_token", None) or security.get_user
    return await resolve(token)


def _airflow_dag_read_check() -> Any:
    """Airflow's dependency for ``GET /api/v2/dags``: called with (request, user), raises 403 when not allowed."""
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET")
