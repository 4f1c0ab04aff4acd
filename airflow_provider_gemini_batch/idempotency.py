"""Durable submit, the pure part: a task instance's key, the record kept across tries, the choice on an earlier job.

A task instance pays for at most one job at a time. The key is derived from dag_id, task_id,
run_id and map_index (not the try number) and carried as a suffix of the job's display name, so a
lookup by key finds the jobs of every try. Where Airflow has a task state store (3.3+; it survives
retries and clears, XCom does not), a :class:`SubmitRecord` is kept there: before a create is sent,
the intent (the key and when it was sent); after, the job's name. A later try reads it back:

- a job that is still running is reconnected to; one that SUCCEEDED is returned without paying again;
- one that ended FAILED, CANCELLED or EXPIRED is replaced by a fresh job (``resubmit_on_failure``);
- an intent without a job name means a create may still be on its way to the service: nothing is
  created until ``request timeout + IN_FLIGHT_MARGIN`` seconds after it was sent *and* a lookup by
  key still finds nothing. A create whose reply was lost or unreadable is treated the same way.

On Airflow 3.0-3.2 (no store) a later try looks the key up in the display names of the jobs listed.
The I/O (the store, the hook) belongs to the submit operator; nothing here does any.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from airflow_provider_gemini_batch.models import Batch, BatchState

__all__ = [
    "IN_FLIGHT_MARGIN",
    "STORE_KEY",
    "EarlierJobChoice",
    "StateStore",
    "SubmitRecord",
    "choose_for_earlier_job",
    "idempotency_key",
    "key_in_display_name",
    "key_marker",
    "keyed_display_name",
]

#: The task state store key of a task instance's :class:`SubmitRecord`.
STORE_KEY = "gemini_batch_submit"
#: Seconds, beyond the request timeout, that a create of unknown outcome may still land in.
IN_FLIGHT_MARGIN = 30.0
_KEY_MARKER = "airflow:"
_KEY_IN_DISPLAY_NAME = re.compile(r"\(" + _KEY_MARKER + r"([0-9a-f]{16})\)$")

EarlierJobChoice = Literal["reconnect", "done", "report", "resubmit"]


def idempotency_key(dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> str:
    """A short key for one task instance, the same on every try."""
    identity = f"{dag_id}|{task_id}|{run_id}|{map_index}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def key_marker(key: str) -> str:
    """The display-name suffix that carries ``key``."""
    return f"({_KEY_MARKER}{key})"


def key_in_display_name(display_name: str | None) -> str | None:
    """The key a display name made by :func:`keyed_display_name` carries, else ``None``."""
    found = _KEY_IN_DISPLAY_NAME.search(display_name or "")
    return found.group(1) if found else None


def keyed_display_name(display_name: str | None, key: str, default: str) -> str:
    """The user's display name (else ``default``, e.g. ``dag.task``) with the key as a suffix."""
    return f"{display_name or default} {key_marker(key)}"


@dataclass
class SubmitRecord:
    """What the task state store keeps for one task instance's job (JSON-safe through :meth:`as_json`).

    :param key: the task instance's idempotency key.
    :param batch_name: the current job, once its create was answered (or it was found by key).
    :param sent_at: Unix time the latest create was sent; with no ``batch_name``, that create's
        outcome is unknown.
    :param in_doubt: a create of this task instance had an unknown outcome at some point, so a late
        duplicate may appear: look for one when the wait ends.
    :param superseded: jobs of earlier tries that ended badly and were replaced.
    """

    key: str
    batch_name: str | None = None
    sent_at: float | None = None
    in_doubt: bool = False
    superseded: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, value: object, key: str | None = None) -> SubmitRecord:
        """Read a stored record; anything else (nothing stored, another key's record) is a fresh one.

        :param key: the task instance's key; ``None`` takes the stored record's own key.
        """
        if key is None:
            stored_key = value.get("key") if isinstance(value, Mapping) else None
            key = stored_key if isinstance(stored_key, str) else ""
        if isinstance(value, str) and value:  # What 0.1 stored: the job's name alone.
            return cls(key, batch_name=value)
        if not isinstance(value, Mapping) or value.get("key") != key:
            return cls(key)
        sent_at = value.get("sent_at")
        superseded = value.get("superseded")
        return cls(
            key,
            batch_name=value.get("batch_name") or None,
            sent_at=float(sent_at) if isinstance(sent_at, int | float) else None,
            in_doubt=bool(value.get("in_doubt")),
            superseded=[name for name in superseded if isinstance(name, str)] if isinstance(superseded, list) else [],
        )

    def as_json(self) -> dict[str, Any]:
        """The record as JSON primitives, for the task state store."""
        return {
            "key": self.key,
            "batch_name": self.batch_name,
            "sent_at": self.sent_at,
            "in_doubt": self.in_doubt,
            "superseded": list(self.superseded),
        }

    @property
    def create_in_flight(self) -> bool:
        """Whether a create was sent whose job is not known: it may still land."""
        return self.sent_at is not None and self.batch_name is None

    def in_flight_until(self, request_timeout: float) -> float:
        """Unix time after which a create sent at ``sent_at`` can no longer land."""
        return (self.sent_at or 0.0) + request_timeout + IN_FLIGHT_MARGIN


def choose_for_earlier_job(batch: Batch, resubmit_on_failure: bool) -> EarlierJobChoice:
    """What a later try does with the job an earlier try created.

    ``reconnect`` to a job still going; ``done`` for one that SUCCEEDED (return it, don't pay again);
    for one that ended FAILED, CANCELLED or EXPIRED, ``resubmit`` a fresh job, or ``report`` that
    outcome again when ``resubmit_on_failure`` is off.
    """
    if not batch.state.is_terminal:
        return "reconnect"
    if batch.state is BatchState.SUCCEEDED:
        return "done"
    return "resubmit" if resubmit_on_failure else "report"


class StateStore(Protocol):
    """What is used of Airflow's task state store (``context["task_state_store"]``, Airflow 3.3+)."""

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any) -> Any: ...
