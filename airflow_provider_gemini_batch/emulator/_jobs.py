"""Batch jobs: their timeline, their state computed lazily from the clock, and their Operation JSON.

A job captures the emulator's configuration when it is created: it stays PENDING for
``pending_seconds``, RUNNING for ``running_seconds``, then reaches ``outcome``. No background task
moves it; every read computes the state from the clock (the webhook courier, ``_delivery``, only
watches for the moment it ends). The control API (and ``:cancel``) can force a state; a forced
PENDING or RUNNING holds until something forces another state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from airflow_provider_gemini_batch.emulator._config import TERMINAL_STATES, EmulatorConfig
from airflow_provider_gemini_batch.emulator._errors import not_found
from airflow_provider_gemini_batch.emulator._wire import int64, new_resource_id, omit_empty, timestamp

__all__ = ["Job", "JobStore", "JobView", "render_operation"]

_NANOS = 1_000_000_000
#: A job pending or running for longer than this becomes EXPIRED (docs/protocol.md "Batches").
_EXPIRY_NANOS = 48 * 3600 * _NANOS
_TYPE_PREFIX = "type.googleapis.com/google.ai.generativelanguage.v1main."
#: The google.rpc.Status a job ends with when it does not succeed: (code, default message).
_TERMINAL_ERRORS = {
    "FAILED": (13, "Batch failed."),
    "CANCELLED": (13, "Batch was cancelled."),
    "EXPIRED": (4, "Batch expired: it was pending or running for more than 48 hours."),
}


@dataclasses.dataclass
class Job:
    """One batch job, from creation to deletion.

    ``inline_requests`` holds the items of an inline job; ``input_path`` the job's own link to the
    input file of a file job. Results appear once, when the job is first seen SUCCEEDED.
    ``webhook_uris`` and ``webhook_metadata`` are the create body's ``webhookConfig``; ``announced``
    turns true once the courier has seen the job end.
    """

    batch_id: str
    model: str
    embedding: bool
    config: EmulatorConfig
    request_count: int
    failed_count: int
    display_name: str | None = None
    priority: int = 0
    estimated_tokens: int = 0
    inline_requests: list[dict[str, Any]] | None = None
    input_file_name: str | None = None
    input_path: Path | None = None
    created_ns: int = dataclasses.field(default_factory=time.time_ns)
    forced: tuple[str, int, str | None] | None = None
    inline_results: list[dict[str, Any]] | None = None
    results_file_name: str | None = None
    webhook_uris: list[str] | None = None
    webhook_metadata: dict[str, Any] | None = None
    announced: bool = False
    deleted: bool = False
    materializing: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        """The resource name, ``batches/{id}``."""
        return f"batches/{self.batch_id}"

    @property
    def materialized(self) -> bool:
        """Whether the results exist already."""
        return self.inline_results is not None or self.results_file_name is not None

    def view(self, now_ns: int) -> JobView:
        """Compute the job's state at ``now_ns`` from its timeline (or a forced state)."""
        if self.forced is not None:
            state, since_ns, message = self.forced
            return JobView(self, state, since_ns, progress=0.0, message=message)
        pending_end = self.created_ns + round(self.config.pending_seconds * _NANOS)
        running_nanos = round(self.config.running_seconds * _NANOS)
        running_end = pending_end + running_nanos
        expiry = self.created_ns + _EXPIRY_NANOS
        if now_ns < min(pending_end, expiry):
            return JobView(self, "PENDING", self.created_ns)
        if now_ns < min(running_end, expiry):
            return JobView(self, "RUNNING", pending_end, progress=(now_ns - pending_end) / running_nanos)
        if running_end > expiry:
            return JobView(self, "EXPIRED", expiry)
        return JobView(self, self.config.outcome, running_end, message=self.config.outcome_message)

    def created_view(self) -> JobView:
        """The view the create reply shows: always PENDING, like the live service."""
        return JobView(self, "PENDING", self.created_ns)

    def force(self, state: str, message: str | None = None) -> None:
        """Put the job in ``state`` from now on."""
        self.forced = (state, time.time_ns(), message)


@dataclasses.dataclass(frozen=True)
class JobView:
    """A job as seen at one instant: state, when it began, progress through RUNNING."""

    job: Job
    state: str
    since_ns: int
    progress: float = 0.0
    message: str | None = None

    @property
    def terminal(self) -> bool:
        """Whether the job has finished (SUCCEEDED, FAILED, CANCELLED or EXPIRED)."""
        return self.state in TERMINAL_STATES

    def batch_stats(self) -> dict[str, Any]:
        """Count requests by outcome; during RUNNING, completed requests grow with time."""
        job = self.job
        if self.state == "SUCCEEDED":
            done, failed = job.request_count, job.failed_count
        elif self.state == "RUNNING":
            done = math.floor(job.request_count * self.progress)
            failed = math.floor(job.failed_count * self.progress)
        else:
            done = failed = 0
        return omit_empty(
            {
                "requestCount": int64(job.request_count),
                "successfulRequestCount": int64(done - failed),
                "failedRequestCount": int64(failed),
                "pendingRequestCount": int64(job.request_count - done),
            }
        )

    def error(self) -> dict[str, Any] | None:
        """The google.rpc.Status of a job that ended without succeeding."""
        if self.state not in _TERMINAL_ERRORS:
            return None
        code, default_message = _TERMINAL_ERRORS[self.state]
        return {"code": code, "message": self.message or default_message}


def render_operation(view: JobView, *, include_inline_results: bool = True) -> dict[str, Any]:
    """Render the job as the service's Operation (``batches.get``, ``create`` and ``list`` items)."""
    job = view.job
    kind = "EmbedContentBatch" if job.embedding else "GenerateContentBatch"
    output = _output(job, include_inline_results) if view.state == "SUCCEEDED" else None
    metadata = omit_empty(
        {
            "@type": _TYPE_PREFIX + kind,
            "model": job.model,
            "displayName": job.display_name,
            "inputConfig": {"fileName": job.input_file_name} if job.input_file_name else None,
            "output": output,
            "createTime": timestamp(job.created_ns),
            "endTime": timestamp(view.since_ns) if view.terminal else None,
            "updateTime": timestamp(view.since_ns),
            "batchStats": view.batch_stats(),
            "state": "BATCH_STATE_" + view.state,
            "name": job.name,
            "priority": int64(job.priority),
            "webhookConfig": omit_empty({"uris": job.webhook_uris, "userMetadata": job.webhook_metadata}),
        }
    )
    # The output appears twice on the wire: in metadata and as the Operation's response.
    response = {"@type": _TYPE_PREFIX + kind + "Output", **output} if output else None
    return omit_empty(
        {"name": job.name, "metadata": metadata, "done": view.terminal, "response": response, "error": view.error()}
    )


def _output(job: Job, include_inline_results: bool) -> dict[str, Any] | None:
    if job.results_file_name is not None:
        return {"responsesFile": job.results_file_name}
    if job.inline_results is not None and include_inline_results:
        return {"inlinedResponses": {"inlinedResponses": job.inline_results}}
    return None


class JobStore:
    """Every job created since the last reset, deleted ones included (for the control API)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._unannounced: dict[str, Job] = {}

    def reset(self) -> None:
        """Forget every job."""
        self._jobs.clear()
        self._unannounced.clear()

    @staticmethod
    def new_batch_id() -> str:
        """Return a fresh batch id."""
        return new_resource_id(24)

    def add(self, job: Job) -> None:
        """Record a newly created job."""
        self._jobs[job.batch_id] = job
        self._unannounced[job.batch_id] = job

    def get(self, name: str) -> Job:
        """Return the live (not deleted) job ``batches/{id}``; 404 otherwise."""
        job = self._jobs.get(name.removeprefix("batches/"))
        if job is None or job.deleted:
            raise not_found(f"Batch {name.removeprefix('batches/')[:60]} not found.")
        return job

    def unannounced(self) -> list[Job]:
        """Jobs whose end the courier has not seen yet."""
        return list(self._unannounced.values())

    def mark_announced(self, job: Job) -> None:
        """Record that the courier has seen ``job`` end (or be deleted first)."""
        job.announced = True
        self._unannounced.pop(job.batch_id, None)

    def newest_first(self, *, include_deleted: bool = False) -> list[Job]:
        """Jobs, newest first."""
        jobs = reversed(self._jobs.values())
        return [job for job in jobs if include_deleted or not job.deleted]

    @property
    def created_count(self) -> int:
        """How many jobs were created since the last reset, deleted ones included."""
        return len(self._jobs)
