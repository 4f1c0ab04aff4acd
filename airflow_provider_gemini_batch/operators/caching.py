"""Operators on context caches: create one for a job's requests to share, delete it when the DAG is done."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_gemini_batch.exceptions import GeminiBatchNotFoundError, GeminiBatchPermissionError
from airflow_provider_gemini_batch.operators.batch import GeminiBatchBaseOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class GeminiCreateCachedContentOperator(GeminiBatchBaseOperator):
    """Create a context cache (a document, a long system instruction) that a batch job's requests share.

    Returns the cache's name (``cachedContents/...``) for ``GeminiSubmitBatchOperator(cached_content=...)``,
    which sets it on every request. Each request then reads the cached tokens at the cached-input price
    instead of sending them again; the cache's storage is billed per hour of its TTL, so delete it when
    the job is done (``GeminiDeleteCachedContentOperator`` with ``trigger_rule="all_done"``). The
    service has a minimum cache size (about 1,024 to 4,096 tokens, by model).

    :param model: the model the job will run on (a cache serves one model), e.g. ``gemini-2.5-flash``.
    :param contents: the content to cache: a string (one user text part), or ``Content`` dicts / strings
        (templated).
    :param system_instruction: a string or a ``Content`` dict (templated).
    :param tools: ``Tool`` dicts, sent as given.
    :param ttl: how long the cache lives (seconds or a ``timedelta``; default one hour longer than the
        submit operator's default wait, 49 h, so that a job that waits its full time can still read it).
        Or give ``expire_time``.
    :param expire_time: when the cache expires (an aware ``datetime`` or an RFC 3339 string; templated).
    :param display_name: a label for the cache (templated).
    """

    template_fields: Sequence[str] = (
        "model",
        "contents",
        "system_instruction",
        "display_name",
        "expire_time",
        "gemini_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"contents": "json", "system_instruction": "json"}

    def __init__(
        self,
        *,
        model: str,
        contents: Any = None,
        system_instruction: Any = None,
        tools: Sequence[dict[str, Any]] | None = None,
        ttl: float | timedelta | None = None,
        expire_time: datetime | str | None = None,
        display_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.contents = contents
        self.system_instruction = system_instruction
        self.tools = tools
        self.ttl = ttl if ttl is not None or expire_time is not None else timedelta(hours=49)
        self.expire_time = expire_time
        self.display_name = display_name

    def execute(self, context: Context) -> str:
        cache = self.hook.create_cached_content(
            self.model,
            contents=self.contents,
            system_instruction=self.system_instruction,
            tools=self.tools,
            ttl=self.ttl,
            expire_time=self.expire_time,
            display_name=self.display_name,
        )
        context["ti"].xcom_push(key="cached_content", value=cache.summary())
        return cache.name


class GeminiDeleteCachedContentOperator(GeminiBatchBaseOperator):
    """Delete a context cache, ending its storage charge. Fits cleanup tasks with ``trigger_rule="all_done"``.

    A cache that is already gone (deleted, or expired) is fine: there is nothing left to pay for.

    :param cached_content: ``cachedContents/...`` (templated; usually the create task's XCom).
    :param ignore_missing: succeed when the cache is gone (404, or 403 as the service may answer).
    """

    template_fields: Sequence[str] = ("cached_content", "gemini_conn_id")

    def __init__(self, *, cached_content: str, ignore_missing: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cached_content = cached_content
        self.ignore_missing = ignore_missing

    def execute(self, context: Context) -> None:
        try:
            self.hook.delete_cached_content(self.cached_content)
        except (GeminiBatchNotFoundError, GeminiBatchPermissionError) as exc:
            if not self.ignore_missing or getattr(exc, "reason", None) == "API_KEY_INVALID":
                raise
            self.log.info("Context cache %s is already gone; nothing to delete", self.cached_content)
