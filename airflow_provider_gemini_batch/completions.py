"""Which listed jobs finished since the last look: the safety net's decision, made once and without I/O.

``GeminiBatchCompletedTrigger`` lists every job of a connection once per interval and hands the list,
the clock and its :class:`Watermark` to :func:`look`, which says which jobs to announce and what the
next watermark is. The trigger only lists, announces and stores.

A job's **end time** is its ``endTime``, else its ``updateTime`` (a terminal job no longer changes),
else the first time a look saw it terminal: a job the service reports with neither is counted from
when it was first seen finished, which a fresh trigger (a restart) takes to be "now".

The watermark is an instant plus the names of the finished jobs seen at or after it. A job is announced
when it is terminal, its end time is at or after the watermark and its name is not remembered there,
so jobs ending at the same instant are neither skipped nor announced twice. The watermark then
follows the newest end time seen, :data:`SETTLE` behind it: a job the list shows as finished a little
after its end time (another job having finished meanwhile) is still announced, and the names to
remember are only those of jobs that ended within that margin.

A job that ended less than :data:`GRACE` before the walk started waits for the next look: its webhook
is usually recorded within a second or two of its end, and announcing it at the same moment would make
two runs for one job. It stays after the watermark (``GRACE`` is shorter than ``SETTLE``) and is not
remembered, so the next look announces it unless the webhook did.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_gemini_batch.models import Batch, BatchState

__all__ = ["GRACE", "SETTLE", "TERMINAL_STATES", "Look", "Watermark", "look"]

#: How far the watermark trails the newest end time seen (see the module docstring).
SETTLE = timedelta(minutes=2)
#: How long after a job's end the safety net leaves it to its webhook (see the module docstring).
GRACE = timedelta(seconds=10)

#: Every final state of a job; what the safety net announces unless told otherwise.
TERMINAL_STATES: frozenset[BatchState] = frozenset(
    {BatchState.SUCCEEDED, BatchState.FAILED, BatchState.CANCELLED, BatchState.EXPIRED}
)


@dataclass(frozen=True)
class Watermark:
    """How far the safety net has looked: jobs ending before ``time`` are done with.

    :param time: the instant (UTC-aware); jobs that ended before it are never announced.
    :param names: jobs that ended at or after ``time`` and were already looked at (announced,
        skipped as handled, or of a state not watched).
    """

    time: datetime
    names: frozenset[str] = frozenset()

    @classmethod
    def starting(cls, now: datetime, lookback: timedelta) -> Watermark:
        """The watermark of a first look: ``lookback`` before ``now``."""
        return cls(now - lookback, frozenset())

    def as_json(self) -> dict[str, Any]:
        """The value to store (JSON): ``{"time": "<ISO 8601>", "names": [...]}``."""
        return {"time": self.time.isoformat(), "names": sorted(self.names)}

    @classmethod
    def from_json(cls, value: Any) -> Watermark | None:
        """Read a stored watermark; ``None`` when there is none or it cannot be read."""
        if not isinstance(value, Mapping) or not isinstance(value.get("time"), str):
            return None
        try:
            time = datetime.fromisoformat(value["time"])
        except ValueError:
            return None
        if time.tzinfo is None:
            return None
        names = value.get("names")
        remembered = (
            frozenset(name for name in names if isinstance(name, str)) if isinstance(names, list) else frozenset()
        )
        return cls(time, remembered)


@dataclass(frozen=True)
class Look:
    """What one look at the listed jobs decided.

    :param announce: the jobs to announce, oldest end time first.
    :param watermark: the watermark after this look.
    :param first_seen: when each listed terminal job without an end or update time was first seen
        terminal; hand it to the next look.
    :param listed: how many jobs the list held.
    :param terminal: how many of them were terminal.
    """

    announce: tuple[Batch, ...]
    watermark: Watermark
    first_seen: dict[str, datetime] = field(default_factory=dict)
    listed: int = 0
    terminal: int = 0


def end_time(batch: Batch, first_seen: Mapping[str, datetime], now: datetime) -> datetime:
    """When ``batch`` (terminal) ended: ``endTime``, else ``updateTime``, else when first seen terminal."""
    moment = batch.end_time or batch.update_time or first_seen.get(batch.name) or now
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def look(
    batches: Iterable[Batch],
    watermark: Watermark,
    *,
    now: datetime,
    first_seen: Mapping[str, datetime] | None = None,
    states: Collection[BatchState] = TERMINAL_STATES,
    grace: timedelta = GRACE,
) -> Look:
    """Decide which of the listed ``batches`` to announce, and the next watermark.

    :param batches: every job of the connection, as one complete list walk returned them.
    :param watermark: the watermark before this look.
    :param now: the time the walk started (UTC-aware): the watermark never passes it, and it is the end
        time of a job seen terminal for the first time without an end or update time.
    :param first_seen: the previous look's :attr:`Look.first_seen`.
    :param states: the final states to announce; jobs in other final states are remembered, not announced.
    :param grace: how long after its end a job is left to its webhook before this look announces it.
    """
    seen_before = first_seen or {}
    listed = 0
    ended: list[tuple[datetime, Batch]] = []
    sightings: dict[str, datetime] = {}
    for batch in batches:
        listed += 1
        if not batch.state.is_terminal:
            continue
        moment = end_time(batch, seen_before, now)
        if batch.end_time is None and batch.update_time is None:
            sightings[batch.name] = moment
        ended.append((moment, batch))
    ended.sort(key=lambda item: (item[0], item[1].name))

    unannounced = [
        (moment, batch) for moment, batch in ended if moment >= watermark.time and batch.name not in watermark.names
    ]
    fresh = [(moment, batch) for moment, batch in unannounced if moment <= now - grace]
    held = {batch.name for moment, batch in unannounced if moment > now - grace}
    newest = max((moment for moment, _ in ended), default=watermark.time)
    # Never past the walk's start: a job listed still running on an early page can end before a job
    # a later page shows finished, and must stay after the watermark for the next look.
    next_time = max(watermark.time, min(newest, now) - SETTLE)
    remembered = frozenset(batch.name for moment, batch in ended if moment >= next_time and batch.name not in held)
    return Look(
        announce=tuple(batch for _, batch in fresh if batch.state in states),
        watermark=Watermark(next_time, remembered),
        first_seen=sightings,
        listed=listed,
        terminal=len(ended),
    )
