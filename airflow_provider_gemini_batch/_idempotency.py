"""Submit once: find the job an earlier try of the same task instance created, instead of paying twice.

The key is derived from dag_id, task_id, run_id and map_index (not the try number), carried as a
suffix of the job's display name, and the job's name is persisted in ``context["task_state_store"]``
where Airflow has it (3.3+; XCom is cleared before each retry, so it cannot serve). A later try looks
in the store first, then scans ``list_batches`` for the key (a worker may die between the create
and the store write, and Airflow before 3.3 has no store).
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_gemini_batch.exceptions import GeminiBatchError, GeminiBatchNotFoundError
from airflow_provider_gemini_batch.models import Batch

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.hooks import GeminiBatchHook

log = logging.getLogger(__name__)

STORE_KEY = "gemini_batch_name"
_KEY_MARKER = "airflow:"


def idempotency_key(context: Any) -> str:
    """A short stable key for this task instance (the same on every try)."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    identity = f"{ti.dag_id}|{ti.task_id}|{ti.run_id}|{map_index}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def keyed_display_name(display_name: str | None, key: str, context: Any) -> str:
    """The user's display name (or ``dag.task``) with the key as a suffix."""
    base = display_name or f"{context['ti'].dag_id}.{context['ti'].task_id}"
    return f"{base} ({_KEY_MARKER}{key})"


def _task_state_store(context: Any) -> Any:
    try:
        return context.get("task_state_store")
    except AttributeError:
        return None


def remember(context: Any, batch_name: str) -> None:
    """Persist the job's name for later tries, where Airflow has a task state store (3.3+)."""
    store = _task_state_store(context)
    if store is not None:
        store.set(STORE_KEY, batch_name)


def find_earlier_job(hook: GeminiBatchHook, context: Any, key: str, *, scan: bool) -> Batch | None:
    """The job an earlier try created: from the task state store, else (``scan``) by key in display names."""
    store = _task_state_store(context)
    stored = store.get(STORE_KEY) if store is not None else None
    if isinstance(stored, str) and stored:
        try:
            return hook.get_batch(stored)
        except GeminiBatchNotFoundError:
            log.warning("Batch %s from an earlier try no longer exists", stored)
    if not scan:
        return None
    return scan_for_key(hook, key)


def scan_for_key(hook: GeminiBatchHook, key: str) -> Batch | None:
    """The newest job whose display name carries ``key``, or ``None``."""
    marker = f"({_KEY_MARKER}{key})"
    found = [batch for batch in hook.list_batches() if (batch.display_name or "").endswith(marker)]
    if not found:
        return None
    found.sort(key=lambda batch: batch.create_time.timestamp() if batch.create_time else 0.0)
    if len(found) > 1:
        log.warning("%d jobs carry key %s; reattaching to the newest, %s", len(found), key, found[-1].name)
    # List replies never carry inline results: fetch the job itself.
    return hook.get_batch(found[-1].name)


def resolve_ambiguous_create(hook: GeminiBatchHook, key: str, error: GeminiBatchError) -> Batch:
    """After a create whose reply was lost, find the job by key rather than creating again."""
    batch = scan_for_key(hook, key)
    if batch is None:
        raise error
    log.warning("The create reply was lost, but job %s with key %s exists: reattaching", batch.name, key)
    return batch
