"""Reading a results file: its bytes, cut anywhere and read again after a body that ended early, into results.

Part of the results fast path (see ``batch_results/__init__.py``). What is read is checked against
the job's ``batchStats.requestCount`` or the expected keys: a results body sent without a length
can end early and look whole (``docs/protocol.md``, "Results files and counts can disagree").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_gemini_batch.batch_results.result import BatchResult, build_result, json_decode
from airflow_provider_gemini_batch.batch_results.writing import UnreadableLine
from airflow_provider_gemini_batch.exceptions import GeminiBatchError, GeminiBatchIncompleteResults

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.batch_results.writing import ResultsWriter
    from airflow_provider_gemini_batch.models import Batch

T = TypeVar("T")


def expected_result_count(batch: Batch, expected_keys: Collection[str | None] | None = None) -> int | None:
    """Return how many results a job should have: distinct expected keys, else ``batchStats.requestCount``.

    :return: ``None`` when neither is known (the job reports no request count).
    """
    if expected_keys is not None:
        return len(set(expected_keys))
    return batch.batch_stats.request_count or None


def check_complete(batch_name: str, expected_count: int | None, read: int, missing_keys: set[Any] | None) -> int:
    """Raise when results are missing; return how many were read beyond those expected (a key read twice, say)."""
    if expected_count is None:
        return 0
    if missing_keys:
        found = expected_count - len(missing_keys)
        raise GeminiBatchIncompleteResults(batch_name, expected_count, found, sorted(map(str, missing_keys)))
    if missing_keys is None and read < expected_count:
        raise GeminiBatchIncompleteResults(batch_name, expected_count, read)
    return read - expected_count


class ResultsFile:
    """One results file read over one or more downloads, each going on where the one before stopped.

    Every download starts at byte 0 (``iter_file_bytes``); the bytes an earlier one already gave are
    skipped, so no line is read twice. A last line without a newline that does not parse is kept for
    the next download while results are still missing (the body was cut off inside it); otherwise it
    is an error. Holds one chunk and one partial line at a time.

    :param missing_keys: the expected keys not read yet, if known; each result's key is taken out.
    :param expected_count: how many results the file should hold (0 when unknown).
    :param skip_unreadable: pass over a line that is not a result instead of raising (a sample of
        errors wants what it can read; a download or ``iter_results`` must not drop a line).
    """

    def __init__(
        self,
        file_name: str,
        expected_count: int,
        missing_keys: set[str | None] | None = None,
        *,
        skip_unreadable: bool = False,
    ) -> None:
        self.file_name = file_name
        self.skip_unreadable = skip_unreadable
        self.expected_count = expected_count
        self.missing_keys = missing_keys
        self.offset = self.line_number = self.read = 0  # bytes consumed, lines seen, results read
        self.rest: list[bytes] = []  # The line being read, in pieces: joined once, at its end.

    @property
    def short(self) -> bool:
        """Whether fewer results were read than the file should hold."""
        return self.read < self.expected_count

    def results(self, chunks: Iterator[bytes]) -> Iterator[BatchResult]:
        """Parse one download's lines into results; blank lines are skipped.

        :raises GeminiBatchError: for a line that is not a result object (the message gives its number).
        """
        decode, build, missing = json_decode, build_result, self.missing_keys
        for lines in self._blocks(chunks):
            number = self.line_number
            for line in lines:
                number += 1
                try:  # BatchResult.from_json, one call fewer
                    data = decode(line)
                    if type(data) is not dict:
                        raise ValueError(f"a result line must be a JSON object, not {type(data).__name__}")
                    result = build(data, line)
                except ValueError as exc:
                    if line.strip() and not self.skip_unreadable:
                        raise self._unreadable(number, exc) from exc
                    continue
                self.read += 1
                if missing is not None:
                    missing.discard(result.key)
                yield result
            self.line_number = number
        last = self._last_line(BatchResult.from_json)
        if last is not None:
            if missing is not None:
                missing.discard(last.key)
            yield last

    def write(self, chunks: Iterator[bytes], writer: ResultsWriter) -> None:
        """Normalise one download's lines into ``writer``.

        :raises GeminiBatchError: for a line that is not a result object (the message gives its number).
        """
        for lines in self._blocks(chunks):
            try:
                self.read += writer.write_lines(lines)
            except UnreadableLine as bad:
                # An identical line before it would have failed first: index() finds this one.
                raise self._unreadable(self.line_number + lines.index(bad.line) + 1, bad.cause) from bad.cause
            self.line_number += len(lines)
        last = self._last_line(writer.render_line)
        if last is not None:
            writer.out.write(last)

    def _blocks(self, chunks: Iterator[bytes]) -> Iterator[list[bytes]]:
        """Yield the lines that end in each chunk; keep the line each chunk ends inside in ``rest``."""
        skip = self.offset
        rest = self.rest
        for chunk in chunks:
            if skip:
                if len(chunk) <= skip:
                    skip -= len(chunk)
                    continue
                chunk, skip = chunk[skip:], 0
            self.offset += len(chunk)
            lines = chunk.split(b"\n")
            if len(lines) == 1:
                rest.append(chunk)
                continue
            if rest:
                rest.append(lines[0])
                lines[0] = b"".join(rest)
                rest.clear()
            last = lines.pop()
            if last:
                rest.append(last)
            yield lines

    def _last_line(self, parse: Callable[[bytes], T]) -> T | None:
        """Parse a last line that had no newline; keep it for the next download if it was cut off."""
        final = b"".join(self.rest)
        self.rest = []
        if not final.strip():
            return None
        try:
            parsed = parse(final)
        except ValueError as exc:
            if not self.short:
                raise self._unreadable(self.line_number + 1, exc) from exc
            self.rest = [final]
            return None
        self.line_number += 1
        self.read += 1
        return parsed

    def _unreadable(self, line_number: int, exc: ValueError) -> GeminiBatchError:
        return GeminiBatchError(
            f"Line {line_number} of results file {self.file_name} is not a valid result object: {type(exc).__name__}."
        )
