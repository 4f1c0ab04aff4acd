"""Turning a job's requests into results, once, when the job is first seen SUCCEEDED.

Inline jobs get ``{"response"|"error", "metadata"}`` items in input order. File jobs get a results
file ``files/batch-{batch id}`` written line by line while the input is read line by line: each
line echoes the input line's top-level fields (``key`` and any extras) and adds ``response`` or
``error``. A line that is not a JSON object with a ``request`` becomes a per-item error.

Reading and writing files runs in a worker thread, so a large job never stalls the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread

from airflow_provider_gemini_batch.emulator._caches import CacheStore
from airflow_provider_gemini_batch.emulator._fake_model import (
    answer_embedding,
    answer_generation,
    item_error,
    rejects,
)
from airflow_provider_gemini_batch.emulator._files import FileStore, StoredFile
from airflow_provider_gemini_batch.emulator._jobs import Job

__all__ = ["count_file_requests", "count_inline_failures", "settle"]

_RESULTS_MIME_TYPE = "application/jsonl"


def count_inline_failures(items: list[dict[str, Any]], *, embedding: bool) -> int:
    """How many inline items the fake model will reject."""
    return sum(rejects(item.get("request", {}), embedding=embedding) for item in items)


async def count_file_requests(path: Path, *, embedding: bool) -> tuple[int, int]:
    """Count the requests in an input file and how many will fail, off the event loop."""
    return await anyio.to_thread.run_sync(_count_file_requests, path, embedding)


def _count_file_requests(path: Path, embedding: bool) -> tuple[int, int]:
    requests = failures = 0
    for _echo, request in _read_input_lines(path):
        requests += 1
        failures += request is None or rejects(request, embedding=embedding)
    return requests, failures


async def settle(job: Job, files: FileStore, state: str, caches: CacheStore | None = None) -> None:
    """Make sure a job seen in ``state`` has its results, computing them at most once.

    :param caches: the context caches requests may name (``cachedContent``); a request naming one
        that is gone by now fails, as on the service.
    """
    if state != "SUCCEEDED" or job.materialized:
        return
    async with job.materializing:
        if job.materialized:  # another request computed them while this one waited
            return
        if job.input_path is not None:
            stored = await anyio.to_thread.run_sync(_write_results_file, job, files, caches)
            files.register(stored)
            job.results_file_name = stored.name
        else:
            job.inline_results = await anyio.to_thread.run_sync(_inline_results, job, caches)


def _answer(job: Job, request: object, caches: CacheStore | None) -> dict[str, Any]:
    if job.embedding:
        return answer_embedding(request)
    cached = caches.tokens_for(request, job.model) if caches is not None and isinstance(request, Mapping) else 0
    if isinstance(cached, str):
        return item_error(cached)
    return answer_generation(request, job.model, cached)


def _inline_results(job: Job, caches: CacheStore | None) -> list[dict[str, Any]]:
    results = []
    for item in job.inline_requests or []:
        result = _answer(job, item.get("request", {}), caches)
        if item.get("metadata"):
            result["metadata"] = item["metadata"]
        results.append(result)
    return results


def _write_results_file(job: Job, files: FileStore, caches: CacheStore | None) -> StoredFile:
    assert job.input_path is not None  # only file jobs get here
    lines = _result_lines(job, job.input_path, caches)
    return files.write_generated(f"batch-{job.batch_id}", lines, _RESULTS_MIME_TYPE)


def _result_lines(job: Job, path: Path, caches: CacheStore | None) -> Iterator[bytes]:
    for echo, request in _read_input_lines(path):
        if request is None:
            outcome = item_error("Invalid request line: expected a JSON object with a 'request' object.")
        else:
            outcome = _answer(job, request, caches)
        yield (json.dumps({**echo, **outcome}) + "\n").encode()


def _read_input_lines(path: Path) -> Iterator[tuple[dict[str, Any], Mapping[str, Any] | None]]:
    """Yield each non-blank input line as (fields to echo, request); request is None if malformed."""
    with path.open("rb") as source:
        for raw in source:
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                yield {}, None
                continue
            if not isinstance(line, dict):
                yield {}, None
                continue
            echo = {key: value for key, value in line.items() if key != "request"}
            request = line.get("request")
            yield echo, request if isinstance(request, Mapping) else None
