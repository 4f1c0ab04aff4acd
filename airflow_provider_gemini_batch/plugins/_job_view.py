"""What the "Gemini Batches" pages show of a job, computed without I/O from the job and Airflow's records.

Values here are plain text; the templates escape every one of them (a display name is user data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from airflow_provider_gemini_batch.idempotency import key_in_display_name, key_marker
from airflow_provider_gemini_batch.links import job_page_path
from airflow_provider_gemini_batch.models import Batch
from airflow_provider_gemini_batch.pricing import format_cost

__all__ = ["COST_NOTE", "Creator", "JobView", "Segment", "format_duration", "format_time"]

NO_VALUE = "—"
#: What the cost column is: the download manifest's estimate, never a bill (docs/caching-and-cost.md).
COST_NOTE = (
    "Cost is the estimate a download task's manifest gives at batch prices, from the provider's price table "
    "(prices as of the date shown; check them against Google's pricing page); a dash where no download priced the job."
)


@dataclass(frozen=True)
class Creator:
    """The task instance that submitted a job, found through the job's durable key (``idempotency.py``)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    def task_path(self) -> str:
        """The task instance's page in Airflow's UI, relative to Airflow's root."""
        path = f"/dags/{_segment(self.dag_id)}/runs/{_segment(self.run_id)}/tasks/{_segment(self.task_id)}"
        return f"{path}/mapped/{self.map_index}" if self.map_index >= 0 else path

    def run_path(self) -> str:
        """The DAG run's page in Airflow's UI, relative to Airflow's root."""
        return f"/dags/{_segment(self.dag_id)}/runs/{_segment(self.run_id)}"

    @property
    def task_label(self) -> str:
        return f"{self.task_id}[{self.map_index}]" if self.map_index >= 0 else self.task_id


@dataclass(frozen=True)
class Segment:
    """One part of a progress bar."""

    kind: str
    """``succeeded``, ``failed`` or ``pending``."""
    count: int
    width: str
    """CSS width, ``66.7%``."""


@dataclass(frozen=True)
class JobView:
    """One job as a row of the list and as the job page."""

    batch: Batch
    creator: Creator | None = None
    usage: Mapping[str, int] = field(default_factory=dict)
    """Token counters summed over the job's results, from a download task's manifest; empty if none was downloaded."""
    cost_estimate: Mapping[str, Any] | None = None
    """The manifest's ``cost`` (``batch``, ``interactive``, ``saved``, ``prices_as_of``); ``None`` if not priced."""

    @property
    def title(self) -> str:
        """The display name without the durable key's ``(airflow:...)`` suffix (the key has a field of its own)."""
        key = self.key
        name = self.batch.display_name or ""
        return (name.removesuffix(key_marker(key)).rstrip() if key else name) or self.batch.id

    @property
    def key(self) -> str | None:
        """The durable key the submit operator put in the display name, if any."""
        return key_in_display_name(self.batch.display_name)

    @property
    def state(self) -> str:
        return self.batch.state.short_name

    @property
    def running(self) -> bool:
        return not self.batch.state.is_terminal

    @property
    def model(self) -> str:
        return (self.batch.model or NO_VALUE).removeprefix("models/")

    @property
    def segments(self) -> list[Segment]:
        stats = self.batch.batch_stats
        total = stats.request_count
        # The service omits zero counters and may drop pendingRequestCount: pending is what is not done.
        pending = max(total - stats.successful_request_count - stats.failed_request_count, 0)
        counts = (("succeeded", stats.successful_request_count), ("failed", stats.failed_request_count))
        return [
            Segment(kind, count, f"{100 * count / total:.1f}%" if total else "0.0%")
            for kind, count in (*counts, ("pending", pending))
        ]

    @property
    def created(self) -> str:
        return format_time(self.batch.create_time)

    @property
    def ended(self) -> str:
        return format_time(self.batch.end_time)

    def duration(self, now: datetime) -> str:
        """From creation to the end, or to ``now`` for a job still going."""
        start = self.batch.create_time
        if start is None:
            return NO_VALUE
        end = self.batch.end_time or (now if self.running else self.batch.update_time)
        return format_duration((end - start).total_seconds()) if end else NO_VALUE

    @property
    def tokens(self) -> str:
        total = self.usage.get("totalTokenCount")
        return f"{total:,}" if isinstance(total, int) else NO_VALUE

    @property
    def cost(self) -> str:
        """What the job cost at batch prices, estimated; a dash when no download priced it."""
        return format_cost(self.cost_estimate["batch"]) if self.cost_estimate else NO_VALUE

    @property
    def cost_detail(self) -> str:
        """The estimate in full: batch, interactive, saved, and the price table's date."""
        if not self.cost_estimate:
            return NO_VALUE
        estimate = self.cost_estimate
        batch, interactive, saved = (format_cost(estimate[name]) for name in ("batch", "interactive", "saved"))
        as_of = estimate.get("prices_as_of") or "unknown"
        return (
            f"{batch} at batch prices ({interactive} interactively, {saved} saved; an estimate, prices as of {as_of})"
        )

    def page_path(self, conn_id: str) -> str:
        """The job's page, relative to Airflow's root (where the operators' extra link points too)."""
        return job_page_path(self.batch.name, conn_id)


def format_time(moment: datetime | None) -> str:
    """``2026-11-30 21:55:52 UTC``, or a dash."""
    if moment is None:
        return NO_VALUE
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: float) -> str:
    """``12 s``, ``3 min 20 s``, ``26 h 04 min``."""
    whole = max(int(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _segment(value: str) -> str:
    return quote(value, safe="")
