"""Getting a finished job's results: inline items, or the results file downloaded again while it comes up short.

The I/O around the results fast path: which results a job has, the downloads (one, and more when a
body ended early), the waits between them, and the final check that none is missing. The lines
themselves are read and written by ``airflow_provider_gemini_batch.batch_results``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any

from airflow_provider_gemini_batch.batch_results import (
    BatchResult,
    ResultsFile,
    ResultsSummary,
    ResultsWriter,
    check_complete,
    expected_result_count,
)
from airflow_provider_gemini_batch.exceptions import GeminiBatchError
from airflow_provider_gemini_batch.hooks._client import SyncClient
from airflow_provider_gemini_batch.hooks._media import media_files
from airflow_provider_gemini_batch.hooks._sources import as_storage_path, open_destination, results_path
from airflow_provider_gemini_batch.models import Batch, BatchState

__all__ = ["ResultsReader", "expected_result_count"]


class ResultsReader:
    """Read one job's results, or write them out normalised, and check that none is missing.

    :param client: the hook's sync client (results files are downloaded through it).
    :param log: where retries and surplus results are reported.
    """

    def __init__(self, client: SyncClient, log: Any) -> None:
        self.client = client
        self.log = log

    def read(self, batch: Batch, expected_keys: Iterable[str] | None = None) -> Iterator[BatchResult]:
        """Iterate over ``batch``'s results (see ``GeminiBatchHook.iter_results``)."""
        missing_keys, expected_count = self._expect(batch, expected_keys)
        if batch.inlined_responses is not None:
            return self._inline(batch, missing_keys, expected_count)
        results = ResultsFile(
            self._file_name(batch), expected_count or 0, missing_keys
        )  # raises at once, not on next()
        return self._file(batch.name, results, expected_count)

    def write(
        self,
        batch: Batch,
        destination: Any,
        expected_keys: Iterable[str] | None = None,
        *,
        skip_if_complete: bool = False,
        media_destination: Any = None,
        keep_inline_media: bool = False,
    ) -> ResultsSummary:
        """Write ``batch``'s results to ``destination`` as normalised lines (see ``GeminiBatchHook.write_results``)."""
        if batch.state is not BatchState.SUCCEEDED:
            raise GeminiBatchError(f"Batch {batch.name} is {batch.state.short_name}: only a SUCCEEDED job has results.")
        path = results_path(destination, batch)
        marker = CompletionMarker(path)
        keys = None if expected_keys is None else sorted(set(expected_keys), key=str)
        media = _media_settings(media_destination, keep_inline_media)
        if skip_if_complete:
            done = marker.read(batch.name, keys, media)
            if done is not None:
                self.log.info(
                    "Results of %s are already complete at %s (%d results); not downloading them again",
                    batch.name,
                    done.path,
                    done.result_count,
                )
                return done
        marker.remove()  # Before the file is replaced: a marker never describes a file it was not written for.
        summary = self._write(batch, path, keys, media_destination, keep_inline_media)
        marker.write(summary, keys, media)
        self.log.info("Wrote %d results of %s to %s", summary.result_count, batch.name, summary.path)
        return summary

    def _write(
        self, batch: Batch, path: Any, expected_keys: Iterable[str] | None, media_destination: Any, keep_media: bool
    ) -> ResultsSummary:
        missing_keys, expected_count = self._expect(batch, expected_keys)
        # Media files are published (at the inner block's end) just before the results file that names them.
        with (
            open_destination(path, compress=str(path).lower().endswith(".gz")) as out,
            media_files(media_destination, keep_inline=keep_media) as media,
        ):
            writer = ResultsWriter(out, batch.kind, missing_keys, media=media)
            if batch.inlined_responses is not None:
                for item in batch.inlined_responses:
                    writer.write_result(BatchResult.from_inline(item))
            else:
                results = ResultsFile(self._file_name(batch), expected_count or 0, missing_keys)
                for chunks in self._downloads(batch.name, results):
                    results.write(chunks, writer)
            self._check(batch.name, expected_count, writer.succeeded + writer.failed, missing_keys)
        media_count, media_bytes = (media.file_count, media.byte_count) if media is not None else (0, 0)
        return ResultsSummary(
            str(path),
            batch.name,
            batch.display_name,
            expected_count,
            writer.succeeded,
            writer.failed,
            writer.usage,
            media_count,
            media_bytes,
        )

    def sample_errors(self, batch: Batch, limit: int, max_lines: int, max_bytes: int) -> list[BatchResult]:
        """The first ``limit`` failed requests within ``max_lines`` results and ``max_bytes`` of the file.

        Best effort (see ``GeminiBatchHook.sample_errors``): a failed read is logged, and what was
        found by then is returned.
        """
        found: list[BatchResult] = []
        results: Iterator[BatchResult]
        if batch.inlined_responses is not None:
            results = (BatchResult.from_inline(item) for item in batch.inlined_responses)
        elif batch.responses_file:
            # An expected count never reached: a line cut at max_bytes is left unread, not an error.
            lines = ResultsFile(batch.responses_file, expected_count=sys.maxsize, skip_unreadable=True)
            results = lines.results(_first_bytes(self.client.iter_file_bytes(batch.responses_file), max_bytes))
        else:
            return found
        try:
            for number, result in enumerate(results):
                if number >= max_lines:
                    break
                if result.error is not None:
                    found.append(BatchResult(key=result.key, error=result.error))
                    if len(found) >= limit:
                        break  # Before the next line: it could start another chunk's download.
        except (GeminiBatchError, ValueError) as exc:
            self.log.warning("Could not read the first failed requests of %s: %s", batch.name, exc)
        finally:
            if isinstance(results, Generator):
                results.close()  # Ends the download: the rest of the file is never sent.
        return found

    def _expect(self, batch: Batch, expected_keys: Iterable[str] | None) -> tuple[set[str | None] | None, int | None]:
        missing_keys: set[str | None] | None = None if expected_keys is None else set(expected_keys)
        expected_count = expected_result_count(batch, missing_keys)
        if missing_keys is not None and batch.batch_stats.request_count not in (0, expected_count):
            self.log.warning(
                "Batch %s reports %d requests; checking its results against the %d expected keys",
                batch.name,
                batch.batch_stats.request_count,
                expected_count,
            )
        return missing_keys, expected_count

    def _inline(
        self, batch: Batch, missing_keys: set[str | None] | None, expected_count: int | None
    ) -> Iterator[BatchResult]:
        read = 0
        for item in batch.inlined_responses or ():
            result = BatchResult.from_inline(item)
            read += 1
            if missing_keys is not None:
                missing_keys.discard(result.key)
            yield result
        self._check(batch.name, expected_count, read, missing_keys)

    def _file(self, batch_name: str, results: ResultsFile, expected_count: int | None) -> Iterator[BatchResult]:
        for chunks in self._downloads(batch_name, results):
            yield from results.results(chunks)
        self._check(batch_name, expected_count, results.read, results.missing_keys)

    @staticmethod
    def _file_name(batch: Batch) -> str:
        if not batch.responses_file:
            raise GeminiBatchError(
                f"Batch {batch.name} has no results (state {batch.state.short_name}): only a SUCCEEDED job has them."
            )
        return batch.responses_file

    def _downloads(self, batch_name: str, results: ResultsFile) -> Iterator[Iterator[bytes]]:
        """Download the file, and again (after a wait) while it comes up short, up to ``max_retries`` times."""
        retry = self.client.settings.retry
        for attempt in range(retry.max_retries + 1):
            if attempt:
                delay = retry.backoff(attempt - 1)
                self.log.warning(
                    "Results file %s of %s ended after %d of %d results; reading it again in %.1f s (retry %d of %d)",
                    results.file_name,
                    batch_name,
                    results.read,
                    results.expected_count,
                    delay,
                    attempt,
                    retry.max_retries,
                )
                time.sleep(delay)
            yield self.client.iter_file_bytes(results.file_name)
            if not results.short:
                return

    def _check(self, batch_name: str, expected_count: int | None, read: int, missing_keys: set[Any] | None) -> None:
        surplus = check_complete(batch_name, expected_count, read, missing_keys)
        if surplus > 0:
            self.log.warning(
                "Batch %s: %d results beyond the %d expected (a key read twice, or a key not expected)",
                batch_name,
                surplus,
                expected_count,
            )


class CompletionMarker:
    """The note that a results file is whole and whose it is: ``.<file name>.complete.json`` beside it.

    Written (atomically, as the results file is) only after the results file is in place, with the
    job's name, the counts of the summary, the file's size, a digest of the expected keys and the
    media settings. A file counts as complete for a job only when the marker names that job, the same
    check (expected keys) and the same media settings (images inline, or pointing into which folder),
    and the file still has the size written: a partial file has no marker, another job's file has a
    marker naming that job, and a file altered since has another size.
    """

    def __init__(self, results: Any) -> None:
        self.results = results
        storage_path = as_storage_path(results)
        if storage_path is not None:
            self.path: Any = storage_path.parent / f".{storage_path.name}.complete.json"
        else:
            folder, name = os.path.split(os.fspath(results))
            self.path = os.path.join(folder, f".{name}.complete.json")

    def read(
        self, batch_name: str, expected_keys: list[str] | None, media: dict[str, Any] | None = None
    ) -> ResultsSummary | None:
        """The summary of the complete write of ``batch_name``'s results, if the file holds them; else ``None``."""
        try:
            with self._open("rb") as stream:
                note = json.loads(stream.read())
            size = self._size()
        except (OSError, ValueError):  # No marker, no results file, or not a marker of ours.
            return None
        if not isinstance(note, dict) or note.get("batch_name") != batch_name or note.get("size_bytes") != size:
            return None
        if note.get("expected_keys_sha256") != _digest(expected_keys) or note.get("media") != media:
            return None
        try:
            fields = {
                field.name: note[field.name] for field in dataclasses.fields(ResultsSummary) if field.name != "path"
            }
            return ResultsSummary(path=str(self.results), **fields)
        except (KeyError, TypeError):
            return None

    def write(
        self, summary: ResultsSummary, expected_keys: list[str] | None, media: dict[str, Any] | None = None
    ) -> None:
        """Record that ``summary``'s file is complete (after it is in place)."""
        note = dataclasses.asdict(summary)
        del note["path"]  # The marker sits beside its file: the path is where it is found.
        note.update(size_bytes=self._size(), expected_keys_sha256=_digest(expected_keys), media=media)
        with open_destination(self.path) as out:
            out.write(json.dumps(note, sort_keys=True).encode())

    def remove(self) -> None:
        """Remove the marker, if there is one."""
        storage_path = as_storage_path(self.path)
        try:
            if storage_path is not None:
                if storage_path.exists():
                    storage_path.unlink()
            else:
                os.remove(self.path)
        except FileNotFoundError:
            pass

    def _open(self, mode: str) -> Any:
        storage_path = as_storage_path(self.path)
        return storage_path.open(mode) if storage_path is not None else open(self.path, mode)

    def _size(self) -> int:
        storage_path = as_storage_path(self.results)
        if storage_path is not None:
            return int(storage_path.stat().st_size)
        return os.path.getsize(os.fspath(self.results))


def _media_settings(media_destination: Any, keep_inline: bool) -> dict[str, Any] | None:
    """What the marker records of how media were written: ``None`` when they stay inline (as markers
    written before media files existed say, by having no ``media``)."""
    if media_destination is None:
        return None
    return {"destination": str(media_destination), "keep_inline": bool(keep_inline)}


def _digest(expected_keys: list[str] | None) -> str | None:
    if expected_keys is None:
        return None
    return hashlib.sha256(json.dumps(expected_keys).encode()).hexdigest()


def _first_bytes(chunks: Iterator[bytes], max_bytes: int) -> Generator[bytes, None, None]:
    """Pass ``chunks`` on until ``max_bytes`` have gone by, then stop (and close the download)."""
    read = 0
    try:
        for chunk in chunks:
            yield chunk
            read += len(chunk)
            if read >= max_bytes:
                return
    finally:
        if isinstance(chunks, Generator):
            chunks.close()
