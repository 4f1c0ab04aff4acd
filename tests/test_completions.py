"""Which listed jobs are newly finished since the watermark, decided without I/O."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_gemini_batch.completions import SETTLE, Look, Watermark
from airflow_provider_gemini_batch.completions import look as decide
from airflow_provider_gemini_batch.models import Batch, BatchState

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)


def look(*args: Any, grace: timedelta = timedelta(0), **kwargs: Any) -> Look:
    """``completions.look`` without the webhook's grace, unless a test gives one: jobs here end at NOW."""
    return decide(*args, grace=grace, **kwargs)


def job(name: str, state: str = "SUCCEEDED", *, end: datetime | None = None, update: datetime | None = None) -> Batch:
    metadata: dict[str, Any] = {"name": f"batches/{name}", "state": f"BATCH_STATE_{state}"}
    if end is not None:
        metadata["endTime"] = end.isoformat()
    if update is not None:
        metadata["updateTime"] = update.isoformat()
    return Batch.model_validate({"name": f"batches/{name}", "metadata": metadata})


def names(batches: Any) -> list[str]:
    return [batch.name.removeprefix("batches/") for batch in batches]


START = Watermark.starting(NOW, timedelta(hours=1))


def test_the_first_watermark_is_lookback_before_now() -> None:
    assert Watermark(NOW - timedelta(hours=1), frozenset()) == START


def test_only_terminal_jobs_that_ended_after_the_watermark_are_announced_oldest_first() -> None:
    listed = [
        job("late", end=NOW - timedelta(minutes=1)),
        job("running", "RUNNING", update=NOW),
        job("early", "FAILED", end=NOW - timedelta(minutes=30)),
        job("before", end=NOW - timedelta(hours=2)),
    ]
    result = look(listed, START, now=NOW)
    assert names(result.announce) == ["early", "late"]
    assert (result.listed, result.terminal) == (4, 3)


def test_the_watermark_trails_the_newest_end_time_by_the_settle_margin_and_remembers_what_it_saw() -> None:
    listed = [job("a", end=NOW - timedelta(minutes=10)), job("b", end=NOW), job("c", end=NOW - SETTLE)]
    result = look(listed, START, now=NOW)
    assert result.watermark == Watermark(NOW - SETTLE, frozenset({"batches/b", "batches/c"}))


def test_a_second_look_at_the_same_jobs_announces_nothing() -> None:
    listed = [job("a", end=NOW - timedelta(minutes=10)), job("b", end=NOW), job("c", end=NOW - SETTLE)]
    first = look(listed, START, now=NOW)
    again = look(listed, first.watermark, now=NOW + timedelta(minutes=5))
    assert names(again.announce) == []
    assert again.watermark == first.watermark


def test_a_job_ending_at_the_watermark_instant_is_announced_once() -> None:
    first = look([job("a", end=NOW)], START, now=NOW)
    tie = look([job("a", end=NOW), job("b", end=NOW - SETTLE)], first.watermark, now=NOW)
    assert names(tie.announce) == ["b"]
    assert names(look([job("a", end=NOW), job("b", end=NOW - SETTLE)], tie.watermark, now=NOW).announce) == []


def test_a_job_that_shows_up_late_within_the_settle_margin_is_still_announced() -> None:
    first = look([job("newer", end=NOW)], START, now=NOW)
    late = job("older", end=NOW - SETTLE / 2)  # Ended before "newer" but listed as finished only now.
    assert names(look([job("newer", end=NOW), late], first.watermark, now=NOW).announce) == ["older"]


def test_the_watermark_never_moves_back() -> None:
    high = Watermark(NOW, frozenset())
    result = look([job("old", end=NOW - timedelta(hours=3))], high, now=NOW)
    assert result.watermark == high
    assert names(result.announce) == []


def test_update_time_stands_in_for_a_missing_end_time() -> None:
    result = look([job("a", "CANCELLED", update=NOW - timedelta(minutes=2))], START, now=NOW)
    assert names(result.announce) == ["a"]
    assert result.watermark.time == NOW - timedelta(minutes=2) - SETTLE


def test_a_job_without_any_time_counts_from_when_it_was_first_seen_finished() -> None:
    first = look([job("a", "EXPIRED")], START, now=NOW)
    assert names(first.announce) == ["a"]
    assert first.first_seen == {"batches/a": NOW}
    later = NOW + timedelta(hours=1)
    again = look([job("a", "EXPIRED")], first.watermark, now=later, first_seen=first.first_seen)
    assert names(again.announce) == []
    assert again.first_seen == {"batches/a": NOW}, "the first sighting is kept, not moved to now"


def test_first_sightings_of_jobs_no_longer_listed_are_forgotten() -> None:
    result = look([], START, now=NOW, first_seen={"batches/gone": NOW})
    assert result.first_seen == {}


def test_a_states_filter_announces_only_those_states_and_still_remembers_the_others() -> None:
    listed = [job("ok", end=NOW), job("bad", "FAILED", end=NOW)]
    result = look(listed, START, now=NOW, states=frozenset({BatchState.FAILED}))
    assert names(result.announce) == ["bad"]
    assert result.watermark.names == {"batches/ok", "batches/bad"}


@pytest.mark.parametrize(
    "stored",
    [None, "x", 3, {}, {"time": "not a time"}, {"time": 5}, {"names": []}, {"time": "2026-01-10T12:00:00"}],
)
def test_an_unreadable_stored_watermark_reads_as_none(stored: Any) -> None:
    assert Watermark.from_json(stored) is None


def test_the_watermark_round_trips_through_json() -> None:
    mark = Watermark(NOW, frozenset({"batches/b", "batches/a"}))
    stored = mark.as_json()
    assert stored == {"time": "2026-01-10T12:00:00+00:00", "names": ["batches/a", "batches/b"]}
    assert Watermark.from_json(stored) == mark
    assert Watermark.from_json({"time": stored["time"], "names": "junk"}) == Watermark(NOW, frozenset())


def test_a_job_still_running_when_listed_is_announced_even_if_a_later_page_showed_a_newer_end() -> None:
    # A long walk: X is listed RUNNING at the start; Z, read minutes later on another page, ended after
    # the walk began. X ended in between. The watermark must not pass the walk's start, or X is lost.
    walk_start = NOW
    first = look(
        [job("x", "RUNNING", update=walk_start), job("z", end=walk_start + timedelta(minutes=3))],
        START,
        now=walk_start,
    )
    assert names(first.announce) == [], "z ended after the walk began: it waits for the next look"
    second = look(
        [job("x", end=walk_start + timedelta(seconds=10)), job("z", end=walk_start + timedelta(minutes=3))],
        first.watermark,
        now=walk_start + timedelta(minutes=5),
    )
    assert names(second.announce) == ["x", "z"]


def test_a_job_that_just_ended_waits_one_look_so_its_webhook_can_land_first() -> None:
    # Announcing a job seconds after its end races the webhook announcing it (two runs for one job).
    fresh = job("fresh", end=NOW - timedelta(seconds=2))
    first = look([fresh], START, now=NOW, grace=timedelta(seconds=10))
    assert names(first.announce) == []
    assert "batches/fresh" not in first.watermark.names, "held back, so not remembered as announced"
    later = look([fresh], first.watermark, now=NOW + timedelta(seconds=30), grace=timedelta(seconds=10))
    assert names(later.announce) == ["fresh"]
