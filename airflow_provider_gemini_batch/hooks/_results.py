"""Reading a finished job's results: inline items, or the results file streamed and split into lines.

This is the results fast path: it runs once per result, millions of times for a large job, so it is
written as flat loops over bytes (``benchmarks/bench_results.py`` is its regression check). What is
read is accounted for against the job's ``batchStats.requestCount`` or the expected keys, because a
results body sent without a length can end early and look whole (``docs/protocol.md``, "Results").
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_gemini_batch.exceptions import GeminiBatchError, GeminiBatchIncompleteResults
from airflow_provider_gemini_batch.hooks._client import SyncClient
from airflow_provider_gemini_batch.models import Batch, BatchResult


def expected_result_count(batch: Batch, expected_keys: Collection[str | None] | None = None) -> int | None:
    """Return how many results a job should have: distinct expected keys, else ``batchStats.requestCount``.

    :return: ``None`` when neither is known (the job reports no request count).
    """
    if expected_keys is not None:
        return len(set(expected_keys))
    return batch.batch_stats.request_count or None


class ResultsReader:
    """Iterate over one job's results and check that none is missing.

    :param client: the hook's sync client (results files are downloaded through it).
    :param log: where retries and surplus results are reported.
    """

    def __init__(self, client: SyncClient, log: Any) -> None:
        self.client = client
        self.log = log

    def read(self, batch: Batch, expected_keys: Iterable[str] | None = None) -> Iterator[BatchResult]:
        """Iterate over ``batch``'s results (see ``GeminiBatchHook.iter_results``)."""
        missing_keys: set[str | None] | None = None if expected_keys is None else set(expected_keys)
        expected_count = expected_result_count(batch, missing_keys)
        if missing_keys is not None and batch.batch_stats.request_count not in (0, expected_count):
            self.log.warning(
                "Batch %s reports %d requests; checking its results against the %d expected keys",
                batch.name,
                batch.batch_stats.request_count,
                expected_count,
            )
        if batch.inlined_responses is not None:
            return self._inline(batch.name, batch.inlined_responses, expected_count, missing_keys)
        if not batch.responses_file:
            raise GeminiBatchError(
                f"Batch {batch.name} has no results (state {batch.state.short_name}): only a SUCCEEDED job has them."
            )
        return self._file(batch.name, batch.responses_file, expected_count, missing_keys)

    def _inline(
        self,
        batch_name: str,
        items: list[dict[str, Any]],
        expected_count: int | None,
        missing_keys: set[str | None] | None,
    ) -> Iterator[BatchResult]:
        read = 0
        for item in items:
            result = BatchResult.from_inline(item)
            read += 1
            if missing_keys is not None:
                missing_keys.discard(result.key)
            yield result
        self._check(batch_name, expected_count, read, missing_keys)

    def _file(
        self,
        batch_name: str,
        file_name: str,
        expected_count: int | None,
        missing_keys: set[str | None] | None,
    ) -> Iterator[BatchResult]:
        progress = _ResultsProgress()
        retry = self.client.settings.retry
        for attempt in range(retry.max_retries + 1):
            if attempt:
                delay = retry.backoff(attempt - 1)
                # iter_file_bytes starts at byte 0 again; _parse_results skips the bytes already parsed.
                self.log.warning(
                    "Results file %s of %s ended after %d of %d results; reading it again in %.1f s (retry %d of %d)",
                    file_name,
                    batch_name,
                    progress.read,
                    expected_count,
                    delay,
                    attempt,
                    retry.max_retries,
                )
                time.sleep(delay)
            chunks = self.client.iter_file_bytes(file_name)
            yield from _parse_results(chunks, file_name, progress, missing_keys, expected_count or 0)
            if progress.read >= (expected_count or 0):
                break
        self._check(batch_name, expected_count, progress.read, missing_keys)

    def _check(
        self, batch_name: str, expected_count: int | None, read: int, missing_keys: set[str | None] | None
    ) -> None:
        """Raise when results are missing; log when there were more than expected."""
        if expected_count is None:
            return
        if missing_keys is not None:
            found = expected_count - len(missing_keys)
            if missing_keys:
                raise GeminiBatchIncompleteResults(batch_name, expected_count, found, sorted(map(str, missing_keys)))
        elif read < expected_count:
            raise GeminiBatchIncompleteResults(batch_name, expected_count, read)
        else:
            found = expected_count
        if read > found:
            self.log.warning(
                "Batch %s: %d results beyond the %d expected (a key read twice, or a key not expected)",
                batch_name,
                read - found,
                expected_count,
            )


@dataclass
class _ResultsProgress:
    """How far ``_parse_results`` got in a results file: where a second read of the file goes on from."""

    offset: int = 0
    """Bytes of the file consumed."""
    line_number: int = 0
    read: int = 0
    """Results yielded."""
    rest: list[bytes] = field(default_factory=list)
    """The start of a last line that did not end (the body was cut off inside it)."""


def _parse_results(
    chunks: Iterator[bytes],
    file_name: str,
    progress: _ResultsProgress,
    missing_keys: set[str | None] | None = None,
    expected_count: int = 0,
) -> Iterator[BatchResult]:
    """Split a results file's bytes into lines and parse each; blank lines are skipped.

    Goes on from ``progress`` and updates it: the first ``progress.offset`` bytes of ``chunks`` were
    parsed by an earlier read of the same file and are skipped, so no line is yielded twice. A last
    line without a newline that does not parse is kept for the next read while fewer than
    ``expected_count`` results were read (the body was cut off inside it); otherwise it is an error.

    Holds one chunk and one partial line at a time. Written as one flat loop because it runs once per
    result, millions of times for a large job (``benchmarks/bench_results.py``).

    :param missing_keys: the expected keys not read yet; each result's key is taken out.
    :raises GeminiBatchError: for a line that is not a result object (the message gives its number).
    """
    parse = BatchResult.from_json
    skip = offset = progress.offset
    line_number, read = progress.line_number, progress.read
    rest = progress.rest  # The start of a line that has not ended yet, in pieces: joined once, at its end.
    for chunk in chunks:
        if skip:
            if len(chunk) <= skip:
                skip -= len(chunk)
                continue
            chunk, skip = chunk[skip:], 0
        offset += len(chunk)
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            rest.append(chunk)
            continue
        if rest:
            rest.append(lines[0])
            lines[0] = b"".join(rest)
            rest = []
        last = lines.pop()
        if last:
            rest.append(last)
        for line in lines:
            line_number += 1
            try:
                result = parse(line)
            except ValueError as exc:
                if line.strip():
                    raise _unreadable_result(file_name, line_number, exc) from exc
                continue
            read += 1
            if missing_keys is not None:
                missing_keys.discard(result.key)
            yield result
    final = b"".join(rest)
    progress.offset, progress.line_number, progress.read, progress.rest = offset, line_number, read, []
    if not final.strip():
        return
    try:
        result = parse(final)
    except ValueError as exc:
        if read >= expected_count:
            raise _unreadable_result(file_name, line_number + 1, exc) from exc
        progress.rest = [final]
        return
    progress.line_number, progress.read = line_number + 1, read + 1
    if missing_keys is not None:
        missing_keys.discard(result.key)
    yield result


def _unreadable_result(file_name: str, line_number: int, exc: ValueError) -> GeminiBatchError:
    return GeminiBatchError(
        f"Line {line_number} of results file {file_name} is not a valid result object: {type(exc).__name__}."
    )
