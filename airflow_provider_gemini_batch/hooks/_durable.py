"""Durable submit: one job per task instance across its tries, crashes and lost replies.

The decisions are pure and live in ``idempotency.py`` (the key, the record, what to do with an
earlier try's job); this module is their I/O: reading and writing the record in the task state
store, looking jobs up by key, creating, and waiting out a create whose outcome is unknown. It is
the hook's (``GeminiBatchHook.submit_durably``), so the submit operator only says what to create.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchAmbiguousCreateError,
    GeminiBatchError,
    GeminiBatchNotFoundError,
)
from airflow_provider_gemini_batch.idempotency import STORE_KEY, StateStore, SubmitRecord, choose_for_earlier_job
from airflow_provider_gemini_batch.models import Batch

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.hooks.gemini_batch import GeminiBatchHook

P = TypeVar("P")

# Creates sent in one try when each outcome stays unknown past its in-flight window.
MAX_CREATE_ROUNDS = 3
# Seconds between lookups by key while a create of unknown outcome may still land.
LOOKUP_INTERVAL = 5.0


class DurableSubmit:
    """Submit one task instance's job, remembering what was sent in ``store``.

    :param hook: the hook that looks jobs up and cancels them.
    :param store: the task state store, or ``None`` (Airflow before 3.3: no record; lookups by key only).
    """

    def __init__(self, hook: GeminiBatchHook, store: StateStore | None) -> None:
        self.hook = hook
        self.log = hook.log
        self.store = store

    def _load(self, key: str | None = None) -> SubmitRecord:
        """The stored record; with ``key``, a fresh one for that key when none is stored."""
        return SubmitRecord.from_json(self.store.get(STORE_KEY) if self.store is not None else None, key)

    def _save(self, record: SubmitRecord) -> None:
        if self.store is not None:
            self.store.set(STORE_KEY, record.as_json())

    def submit(
        self,
        key: str,
        prepare: Callable[[], P],
        create: Callable[[P], Batch],
        *,
        resubmit_on_failure: bool,
        look_up_without_store: bool,
    ) -> Batch:
        """Reconnect to, return, or replace the job of an earlier try; create one only when none may exist.

        ``key`` is the task instance's idempotency key (``idempotency.idempotency_key``).
        ``prepare`` (validate, upload) runs before the intent is recorded, so the in-flight window of a
        create starts when the create is sent, however long an upload took.
        """
        record = self._load(key)
        earlier: Batch | None = None
        if record.batch_name:
            try:
                earlier = self.hook.get_batch(record.batch_name)
            except GeminiBatchNotFoundError:
                self.log.warning("Batch %s of an earlier try no longer exists", record.batch_name)
        elif record.create_in_flight:
            self.log.warning("An earlier try sent a create and never learnt its outcome")
            record.in_doubt = True
            earlier = self._await_create_in_flight(record)
        elif self.store is None and look_up_without_store:
            earlier = self.hook.find_batch_by_key(key)
        if earlier is not None:
            if choose_for_earlier_job(earlier, resubmit_on_failure) != "resubmit":
                self.log.info("Reconnecting to %s (%s), created by an earlier try", earlier.name, earlier.progress)
                record.batch_name = earlier.name
                self._save(record)
                return earlier
            self.log.warning("%s of an earlier try ended %s: submitting a fresh job", earlier.name, earlier.progress)
            record.superseded.append(earlier.name)
        prepared = prepare()
        return self._create(lambda: create(prepared), record)

    def _create(self, create: Callable[[], Batch], record: SubmitRecord) -> Batch:
        """Record the intent, send the create, and resolve an unknown outcome by lookup, not by resending."""
        for _ in range(MAX_CREATE_ROUNDS):
            record.batch_name, record.sent_at = None, time.time()
            self._save(record)
            try:
                batch = create()
            except GeminiBatchAmbiguousCreateError as error:
                self.log.warning("%s", error)
                record.in_doubt = True
                found = self._await_create_in_flight(record)
                if found is None:
                    self.log.warning("No job with key %s appeared: sending the create again", record.key)
                    continue
                batch = found
            except GeminiBatchError:
                # Refused (400, 429 after retries, ...): no job exists, so a retry need not wait for one.
                record.sent_at = None
                self._save(record)
                raise
            record.batch_name = batch.name
            self._save(record)
            return batch
        raise GeminiBatchError(
            f"{MAX_CREATE_ROUNDS} creates in a row had an unknown outcome and no job appeared for any of them; "
            "check the service's status before running the task again"
        )

    def _await_create_in_flight(self, record: SubmitRecord) -> Batch | None:
        """Look a create of unknown outcome up by key until it can no longer land; the job, or ``None``."""
        until = record.in_flight_until(self.hook.settings.timeout)
        self.log.warning(
            "A create sent %.0f s ago may still reach the service: looking for a job with key %s for up to %.0f s, "
            "and creating none meanwhile",
            time.time() - (record.sent_at or 0.0),
            record.key,
            max(0.0, until - time.time()),
        )
        while True:
            found = self.hook.find_batch_by_key(record.key, exclude=record.superseded)
            if found is not None:
                self.log.warning("Found %s, created by the create of unknown outcome: using it", found.name)
                return found
            left = until - time.time()
            if left <= 0:
                return None
            time.sleep(min(LOOKUP_INTERVAL, left))

    def cancel_late_duplicates(self, keep: str) -> None:
        """Cancel any job under the recorded key that a create of unknown outcome made after ``keep`` was used."""
        if self.store is None:
            return
        record = self._load()
        if not record.in_doubt:
            return
        try:
            duplicates = [
                batch
                for batch in self.hook.find_batches_by_key(record.key)
                if batch.name != keep and batch.name not in record.superseded and not batch.state.is_terminal
            ]
        except GeminiBatchError as exc:
            self.log.warning("Could not look for late duplicates of %s: %s", keep, exc)
            return
        for batch in duplicates:
            self.log.warning("%s carries this task's key but landed late, after %s was used", batch.name, keep)
            self.hook.cancel_quietly(batch.name, "it is a late duplicate of " + keep)
