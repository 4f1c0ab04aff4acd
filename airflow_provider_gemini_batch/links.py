"""The "Gemini batch" extra link: from a task to its job's page in the provider's "Gemini Batches" view.

Airflow computes a task's extra links on the worker when the task ends and keeps each in XCom,
where the UI reads it. The submit operators find the job's name in their ``batch_name`` XCom; the
sensor and the get, cancel and download operators in their rendered ``batch_name`` argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from airflow_provider_gemini_batch.settings import BATCHES_PAGE_PATH

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator

__all__ = ["GeminiBatchLink", "job_page_path"]

DEFAULT_CONN_ID = "gemini_default"


def job_page_path(batch_name: str, conn_id: str, airflow_root: str = "") -> str:
    """The job's page: ``{airflow_root}/gemini-batch/batches/{id}?conn_id=...``."""
    batch_id = quote(batch_name.removeprefix("batches/"), safe="")
    return f"{airflow_root}{BATCHES_PAGE_PATH}/{batch_id}?conn_id={quote(conn_id, safe='')}"


class GeminiBatchLink(BaseOperatorLink):
    """Link a task to the page of the batch job it submitted, waited for, read, cancelled or downloaded."""

    name = "Gemini batch"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        batch_name = getattr(operator, "batch_name", None)
        if not isinstance(batch_name, str) or not batch_name:  # The submit operators: the job they created.
            batch_name = XCom.get_value(ti_key=ti_key, key="batch_name")
        if not isinstance(batch_name, str) or not batch_name:
            return ""
        conn_id = getattr(operator, "gemini_conn_id", None) or DEFAULT_CONN_ID
        return job_page_path(batch_name, conn_id, _airflow_root())


def _airflow_root() -> str:
    """The path Airflow is served under (``[api] base_url``'s path; empty at the root), so the link is relative."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
