"""Quota at create: the concurrent-jobs limit and the enqueued-token limit (docs/protocol.md "Quota at create").

The service refuses a create over either limit with 429 RESOURCE_EXHAUSTED and a ``RetryInfo``
detail, and makes no job. Both limits are off until the control API sets them
(``max_concurrent_jobs``, ``max_enqueued_tokens``).

Tokens are estimated as the provider's splitter estimates them, a quarter of each request's bytes
rounded up, so a test can size shards and limits with the same arithmetic.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio.to_thread

from airflow_provider_gemini_batch.emulator._errors import ApiError
from airflow_provider_gemini_batch.emulator._jobs import Job, JobStore

__all__ = ["admit", "estimate_file_tokens", "estimate_inline_tokens"]


def _tokens(size: int) -> int:
    return -(-size // 4)


def estimate_inline_tokens(items: list[dict[str, Any]]) -> int:
    """Estimated input tokens of inline items: a quarter of each item's compact JSON, rounded up."""
    return sum(_tokens(len(json.dumps(item, separators=(",", ":")).encode())) for item in items)


async def estimate_file_tokens(path: Path) -> int:
    """Estimated input tokens of an input file: a quarter of each non-blank line's bytes, rounded up."""
    return await anyio.to_thread.run_sync(_file_tokens, path)


def _file_tokens(path: Path) -> int:
    total = 0
    with path.open("rb") as source:
        for raw in source:
            line = raw.rstrip(b"\r\n")
            if line.strip():
                total += _tokens(len(line))
    return total


def admit(jobs: JobStore, job: Job) -> None:
    """Raise 429 RESOURCE_EXHAUSTED when ``job`` would go over a limit of its configuration; else return."""
    config = job.config
    if config.max_concurrent_jobs is None and config.max_enqueued_tokens is None:
        return
    now = time.time_ns()
    active = [other for other in jobs.newest_first() if not other.view(now).terminal]
    if config.max_concurrent_jobs is not None and len(active) >= config.max_concurrent_jobs:
        raise _exhausted(
            f"You have reached the limit of {config.max_concurrent_jobs} concurrent batch jobs: "
            "wait for a job to finish, or cancel one.",
            config.quota_retry_seconds,
        )
    if config.max_enqueued_tokens is not None:
        enqueued = sum(other.estimated_tokens for other in active if other.model == job.model)
        if enqueued + job.estimated_tokens > config.max_enqueued_tokens:
            raise _exhausted(
                f"Enqueued tokens for {job.model} would exceed the limit of {config.max_enqueued_tokens} "
                f"({enqueued} enqueued by active jobs, {job.estimated_tokens} in this batch).",
                config.quota_retry_seconds,
            )


def _exhausted(message: str, retry_seconds: float) -> ApiError:
    delay = f"{retry_seconds:g}s"
    return ApiError(
        429,
        message,
        details=[
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"subject": "batch", "description": message}],
            },
        ],
    )
