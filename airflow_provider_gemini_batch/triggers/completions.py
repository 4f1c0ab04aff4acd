"""``GeminiBatchCompletedTrigger``: the safety net that announces finished jobs when webhooks are lost.

Webhooks announce a finished job within seconds, but a delivery can be lost (the api-server down for
longer than the service retries). This trigger, run by an ``AssetWatcher`` in the triggerer, lists the
connection's jobs once per interval and emits one event per job that finished since its last look, on
the same asset the webhook receiver records on (``assets.gemini_batch_completed``). A lost webhook then
costs one interval, not a missed run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_gemini_batch.assets import WATERMARK_KEY, CompletedBatch, gemini_batch_completed, handled_key
from airflow_provider_gemini_batch.completions import GRACE, TERMINAL_STATES, Watermark, look
from airflow_provider_gemini_batch.exceptions import GeminiBatchError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import Batch, BatchState
from airflow_provider_gemini_batch.settings import (
    DEFAULT_COMPLETION_LOOKBACK,
    DEFAULT_COMPLETION_POLL_INTERVAL,
    max_concurrent_polls,
)
from airflow_provider_gemini_batch.triggers.gemini_batch import _poll_slots

__all__ = ["GeminiBatchCompletedTrigger", "watched_gemini_batch_completed"]

#: The least time one walk may take, retries included, when the poll interval is shorter.
MIN_WALK_TIMEOUT = 60.0


class GeminiBatchCompletedTrigger(BaseEventTrigger):
    """List a connection's jobs every ``poll_interval`` seconds; emit one event per job newly finished.

    Each interval makes **one** walk of ``list_batches`` (every page) for all jobs of the connection,
    whatever their number, and hands the list to ``completions.look``, which picks the jobs that are
    terminal and ended since the watermark (``completions`` says how end times, ties and late
    listings are handled). Each event's payload is ``CompletedBatch(..., source="poll").as_extra()``;
    Airflow records it as an asset event whose ``extra`` is ``{"from_trigger": true, "payload": ...}``,
    which ``assets.completed_batches`` reads. A walk that fails (an outage, a timeout, a bad key) is
    logged and tried again at the next interval: the watcher never stops, and the watermark does not
    move, so no job is lost. A walk is cut after ``walk_timeout`` seconds, since the client's retries
    honour server delays of minutes. Each request takes a slot of the triggerer-wide cap
    ``[gemini_batch] max_concurrent_polls``, shared with ``GeminiBatchTrigger``.

    **Airflow 3.3+** keeps the watermark in the watched asset's state store (key
    ``assets.WATERMARK_KEY``), so a triggerer restart continues where it stopped, and it catches up on
    jobs that finished while no triggerer ran. A job whose ``assets.handled_key`` is set (the webhook
    receiver sets it when it records a job) is not announced again; the trigger sets it for each job it
    announces. A fresh watermark starts ``lookback`` seconds before the first look.

    **Airflow 3.0-3.2** has no asset state store: the watermark lives in memory and starts ``lookback``
    seconds before the trigger starts. So a triggerer restart announces again the jobs that finished
    within the last ``lookback`` (harmless: the download operator skips a destination that already
    holds a job's complete results), jobs that finished during a gap longer than ``lookback`` are not
    announced, and a job the webhook announced is announced by the poll as well (a run for a job
    already handled is harmless, as above).

    Declare the watcher on the completion asset and schedule the results DAG on it, on any Airflow
    3 release (:func:`watched_gemini_batch_completed` builds the same asset)::

        from airflow.sdk import DAG, Asset, AssetWatcher
        from airflow_provider_gemini_batch.assets import gemini_batch_completed
        from airflow_provider_gemini_batch.triggers import GeminiBatchCompletedTrigger

        completed = gemini_batch_completed("gemini_default")
        watched = Asset(
            name=completed.name,
            uri=completed.uri,
            group=completed.group,
            watchers=[
                AssetWatcher(
                    name="gemini_batch_completed_poll_gemini_default",
                    trigger=GeminiBatchCompletedTrigger(gemini_conn_id="gemini_default", poll_interval=300),
                )
            ],
        )
        with DAG("gemini_batch_results_on_completion", schedule=[watched]):
            ...  # read the jobs with assets.completed_batches(triggering_asset_events[completed])

    Declare one watcher per connection: two watchers with equal arguments are one trigger to Airflow.

    :param gemini_conn_id: the ``gemini`` connection whose jobs to watch.
    :param poll_interval: seconds between two walks of the job list.
    :param lookback: seconds before the first look from which finished jobs are announced, when no
        watermark is stored (a first start; every start before Airflow 3.3).
    :param states: the final states to announce (``BATCH_STATE_SUCCEEDED``, ``FAILED``, ...; default:
        all four).
    :param walk_timeout: seconds one walk may take, retries included (default: the poll interval, at
        least :data:`MIN_WALK_TIMEOUT`).
    :param grace: seconds after a job's end during which it is left to its webhook (``completions.GRACE``,
        10): announcing it at once would race the webhook and make two runs for one job.
    """

    def __init__(
        self,
        gemini_conn_id: str = GeminiBatchHook.default_conn_name,
        poll_interval: float = DEFAULT_COMPLETION_POLL_INTERVAL,
        lookback: float | timedelta = DEFAULT_COMPLETION_LOOKBACK,
        states: Iterable[str | BatchState] | None = None,
        walk_timeout: float | None = None,
        grace: float = GRACE.total_seconds(),
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.gemini_conn_id = gemini_conn_id
        self.poll_interval = float(poll_interval)
        self.lookback = lookback.total_seconds() if isinstance(lookback, timedelta) else float(lookback)
        chosen = TERMINAL_STATES if states is None else frozenset(BatchState(state) for state in states)
        not_final = sorted(state.value for state in chosen if not state.is_terminal)
        if not_final or not chosen:
            raise ValueError(
                f"states must name final states of a job (SUCCEEDED, FAILED, CANCELLED, EXPIRED), got {not_final}."
            )
        self.states = sorted(state.value for state in chosen)
        self.walk_timeout = float(walk_timeout) if walk_timeout is not None else None
        self.grace = float(grace)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "gemini_conn_id": self.gemini_conn_id,
                "poll_interval": self.poll_interval,
                "lookback": self.lookback,
                "states": list(self.states),
                "walk_timeout": self.walk_timeout,
                "grace": self.grace,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = GeminiBatchHook(gemini_conn_id=self.gemini_conn_id, async_gate=_poll_slots(max_concurrent_polls()))
        memory = _Memory(self._state_store(), self.log)
        try:
            while True:
                async for event in self._look_once(hook, memory):
                    yield event
                await asyncio.sleep(self.poll_interval)
        finally:
            await hook.aclose()

    async def _look_once(self, hook: GeminiBatchHook, memory: _Memory) -> AsyncIterator[TriggerEvent]:
        """One walk: list every job, announce those newly finished, move the watermark on."""
        now = datetime.now(timezone.utc)
        watermark = await memory.watermark(now, timedelta(seconds=self.lookback))
        if watermark is None:
            return
        batches = await self._walk(hook)
        if batches is None:
            return
        decided = look(
            batches,
            watermark,
            now=now,
            first_seen=memory.first_seen,
            states=frozenset(BatchState(state) for state in self.states),
            grace=timedelta(seconds=self.grace),
        )
        handled = [batch.name for batch in decided.announce if await memory.is_handled(batch.name)]
        self.log.log(
            logging.INFO if decided.announce else logging.DEBUG,
            "Listed %d jobs of connection %s: %d finished, %d newly finished (%d already announced)",
            decided.listed,
            self.gemini_conn_id,
            decided.terminal,
            len(decided.announce) - len(handled),
            len(handled),
        )
        for batch in decided.announce:
            if batch.name in handled:
                continue
            self.log.info("Batch %s finished (%s): announcing it", batch.name, batch.state.short_name)
            yield TriggerEvent(_completed(batch).as_extra())  # type: ignore[no-untyped-call]
            await memory.mark_handled(batch.name, now)
        memory.first_seen = decided.first_seen
        await memory.advance(decided.watermark)

    async def _walk(self, hook: GeminiBatchHook) -> list[Batch] | None:
        """Every job of the connection, or ``None`` (logged) when the walk fails or takes too long."""
        limit = self.walk_timeout if self.walk_timeout is not None else max(self.poll_interval, MIN_WALK_TIMEOUT)
        try:
            with anyio.fail_after(limit):
                return [batch async for batch in hook.alist_batches()]
        except TimeoutError:
            self.log.warning(
                "Listing the jobs of connection %s took over %g s; trying again in %g s",
                self.gemini_conn_id,
                limit,
                self.poll_interval,
            )
        except GeminiBatchError as exc:
            self.log.warning(
                "Could not list the jobs of connection %s (%s); trying again in %g s",
                self.gemini_conn_id,
                exc,
                self.poll_interval,
            )
        return None

    def _state_store(self) -> Any:
        """The watched asset's state store (Airflow 3.3+, set by the triggerer), or ``None``."""
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return None
        try:  # The triggerer's accessors hold one store per watched asset: the completion asset's.
            return store[gemini_batch_completed(self.gemini_conn_id)]
        except (KeyError, TypeError):  # Watching another asset alone: its store.
            return store


class _Memory:
    """What the trigger remembers between walks: in the asset state store when there is one, else here."""

    def __init__(self, store: Any, log: Any) -> None:
        self.store = store
        self.log = log
        self.current: Watermark | None = None
        self.saved: Watermark | None = None
        self.first_seen: dict[str, datetime] = {}

    async def watermark(self, now: datetime, lookback: timedelta) -> Watermark | None:
        """The watermark: the stored one on the first look, if any; ``None`` when the store cannot be read."""
        if self.current is not None:
            return self.current
        stored = None
        if self.store is not None:
            try:
                stored = Watermark.from_json(await self.store.aget(WATERMARK_KEY, None))
            except json.JSONDecodeError as exc:  # A corrupt stored value: start afresh, keep using the store.
                self.log.warning("The stored watermark is not JSON (%s); starting from the lookback", exc)
            except ValueError as exc:  # Several assets watched, none of them the completion asset.
                self.log.warning("No asset state store to use (%s); keeping the watermark in memory", exc)
                self.store = None
            except Exception as exc:  # The store's errors are Airflow's, and vary by release.
                self.log.warning("Could not read the stored watermark (%s); trying again at the next interval", exc)
                return None
        self.current = self.saved = stored
        if stored is None:
            self.current = Watermark.starting(now, lookback)
            self.log.info("No stored watermark: announcing jobs that finished after %s", self.current.time.isoformat())
        return self.current

    async def is_handled(self, batch: str) -> bool:
        """Whether either path has announced ``batch`` already (always no without a store)."""
        if self.store is None:
            return False
        try:
            return bool(await self.store.aget(handled_key(batch), None))
        except Exception as exc:  # Announce rather than risk losing the job: a second run is harmless.
            self.log.warning("Could not read whether %s was announced (%s); announcing it", batch, exc)
            return False

    async def mark_handled(self, batch: str, now: datetime) -> None:
        if self.store is None:
            return
        try:
            await self.store.aset(handled_key(batch), {"source": "poll", "at": now.isoformat()})
        except Exception as exc:
            self.log.warning("Could not record that %s was announced (%s)", batch, exc)

    async def advance(self, watermark: Watermark) -> None:
        """Keep the new watermark, and store it when it changed."""
        self.current = watermark
        if self.store is None or watermark == self.saved:
            return
        try:
            await self.store.aset(WATERMARK_KEY, watermark.as_json())
            self.saved = watermark
        except Exception as exc:  # Kept in memory; stored at the next walk.
            self.log.warning("Could not store the watermark (%s); trying again after the next walk", exc)


def _completed(batch: Batch) -> CompletedBatch:
    """The event a finished job makes: the same fields a webhook delivery carries."""
    extra = batch.model_extra or {}
    config = extra.get("webhookConfig") or extra.get("webhook_config")
    metadata = config.get("user_metadata") or config.get("userMetadata") if isinstance(config, Mapping) else None
    return CompletedBatch(
        batch=batch.name,
        state=batch.state.value,
        results_file=batch.responses_file,
        user_metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
        source="poll",
        error=batch.error.message if batch.error is not None and batch.error.message else None,
    )


def watched_gemini_batch_completed(
    conn_id: str = GeminiBatchHook.default_conn_name,
    *,
    poll_interval: float = DEFAULT_COMPLETION_POLL_INTERVAL,
    lookback: float | timedelta = DEFAULT_COMPLETION_LOOKBACK,
    states: Iterable[str | BatchState] | None = None,
) -> Any:
    """``assets.gemini_batch_completed(conn_id)`` with the safety net watching it; schedule a DAG on it.

    ``schedule=[watched_gemini_batch_completed("gemini_default")]`` runs the DAG when a job of the
    connection finishes, announced by a webhook or, when that is lost, by the poll. The asset has the
    same name and URI as ``gemini_batch_completed(conn_id)``, which tasks use to read the events.
    Parameters as :class:`GeminiBatchCompletedTrigger`.
    """
    from airflow.sdk import Asset, AssetWatcher

    completed = gemini_batch_completed(conn_id)
    trigger = GeminiBatchCompletedTrigger(
        gemini_conn_id=conn_id, poll_interval=poll_interval, lookback=lookback, states=states
    )
    return Asset(
        name=completed.name,
        uri=completed.uri,
        group=completed.group,
        watchers=[AssetWatcher(name=f"gemini_batch_completed_poll_{conn_id}", trigger=trigger)],
    )
