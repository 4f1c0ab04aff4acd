"""``GeminiBatchHook``: auth and every HTTP call to the Gemini Batch and Files API, sync and async."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import httpx
from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchConfigError,
    GeminiBatchError,
    GeminiBatchIncompleteResults,
    GeminiBatchServerError,
)
from airflow_provider_gemini_batch.hooks import _api
from airflow_provider_gemini_batch.hooks._retry import RetryPolicy, ambiguous_create
from airflow_provider_gemini_batch.hooks._sources import open_destination, open_source
from airflow_provider_gemini_batch.hooks._transport import (
    DEFAULT_BASE_URL,
    AsyncClient,
    ClientSettings,
    SyncClient,
)
from airflow_provider_gemini_batch.hooks._upload import DEFAULT_CHUNK_BYTES, ResumableUpload
from airflow_provider_gemini_batch.idempotency import key_marker
from airflow_provider_gemini_batch.models import Batch, BatchResult, GeminiFile
from airflow_provider_gemini_batch.watch import (
    DEFAULT_OUTAGE_LIMIT,
    DEFAULT_POLL_INTERVAL,
    BatchWatch,
    Decision,
    Finish,
    WaitOutcome,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection

T = TypeVar("T")

DEFAULT_API_VERSION = "v1beta"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 5


class GeminiBatchHook(BaseHook):
    """Talk to the Gemini API Batch Mode and Files API through an Airflow connection of type ``gemini``.

    The connection's **password** holds the API key (sent only in the ``x-goog-api-key`` header);
    its optional **host** is the base URL (the emulator's, or a proxy's); its extras are
    ``api_version`` (default ``v1beta``), ``timeout`` (seconds per request, default 60) and
    ``max_retries`` (default 5). Nothing is read until the first call.

    Every method has a docstring; async twins carry an ``a`` prefix (``get_batch`` / ``aget_batch``).

    :param gemini_conn_id: the connection to use.
    :param transport: an ``httpx`` transport for the sync client (tests use ``httpx.MockTransport``).
    :param async_transport: the same for the async client.
    :param async_gate: an async context manager entered around each HTTP attempt of the async client
        (not around its waits between retries); the trigger passes a semaphore shared by the triggerer.
    """

    conn_name_attr = "gemini_conn_id"
    default_conn_name = "gemini_default"
    conn_type = "gemini"
    hook_name = "Gemini Batch"

    def __init__(
        self,
        gemini_conn_id: str = default_conn_name,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        async_gate: AbstractAsyncContextManager[Any] | None = None,
        retry_base_delay: float = 1.0,
    ) -> None:
        super().__init__()
        self.gemini_conn_id = gemini_conn_id
        self._transport = transport
        self._async_transport = async_transport
        self._async_gate = async_gate
        self._retry_base_delay = retry_base_delay

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Label the connection form: the key goes in the password field, the host is optional."""
        return {
            "hidden_fields": ["schema", "login", "port"],
            "relabeling": {"password": "API key", "host": "Base URL (optional)"},
            "placeholders": {
                "host": DEFAULT_BASE_URL,
                "password": "Gemini API key from Google AI Studio",
                "extra": json.dumps({"api_version": "v1beta", "timeout": 60, "max_retries": 5}),
            },
        }

    # -- connection ---------------------------------------------------------------------------

    @cached_property
    def settings(self) -> ClientSettings:
        """Client settings read from the connection (sync: workers)."""
        try:
            conn = self.get_connection(self.gemini_conn_id)
        except AirflowNotFoundException as exc:
            raise self._missing_connection() from exc
        return self._settings_from(conn, conn.extra_dejson)

    async def asettings(self) -> ClientSettings:
        """Client settings read from the connection without blocking the event loop (triggers)."""
        if "settings" not in self.__dict__:
            try:
                conn = await get_async_connection(self.gemini_conn_id, self)
            except AirflowNotFoundException as exc:
                raise self._missing_connection() from exc
            self.__dict__["settings"] = self._settings_from(conn, await get_async_extra_dejson(conn))
        return self.settings

    def _missing_connection(self) -> GeminiBatchConfigError:
        return GeminiBatchConfigError(
            f"Connection {self.gemini_conn_id!r} does not exist: create a connection of type 'gemini' with "
            "the API key in its password field (or set AIRFLOW_CONN_"
            f"{self.gemini_conn_id.upper()})."
        )

    def _settings_from(self, conn: Connection, extra: Mapping[str, Any]) -> ClientSettings:
        api_key = (conn.password or "").strip()
        if not api_key:
            raise GeminiBatchConfigError(
                f"Connection {self.gemini_conn_id!r} has no API key: put the Gemini API key in its password field."
            )
        # Airflow registers the password with the secret masker when it reads the connection (sync and
        # async alike). A second, synchronous registration here would block a trigger's event loop and
        # crashes triggers on Airflow 3.0 ("cannot use AsyncToSync in the same thread").
        return ClientSettings(
            base_url=_base_url(conn),
            api_key=api_key,
            api_version=str(extra.get("api_version") or DEFAULT_API_VERSION).strip("/"),
            timeout=_number(extra, "timeout", DEFAULT_TIMEOUT, self.gemini_conn_id),
            retry=RetryPolicy(
                max_retries=int(_number(extra, "max_retries", DEFAULT_MAX_RETRIES, self.gemini_conn_id)),
                base_delay=self._retry_base_delay,
            ),
        )

    @cached_property
    def client(self) -> SyncClient:
        """The sync HTTP client, built on first use."""
        return SyncClient(self.settings, self._transport)

    async def aclient(self) -> AsyncClient:
        """The async HTTP client, built on first use inside the running event loop."""
        if "_async_client" not in self.__dict__:
            self.__dict__["_async_client"] = AsyncClient(
                await self.asettings(), self._async_transport, self._async_gate
            )
        client: AsyncClient = self.__dict__["_async_client"]
        return client

    def close(self) -> None:
        """Close the sync client's connections."""
        if "client" in self.__dict__:
            self.client.close()

    async def aclose(self) -> None:
        """Close the async client's connections."""
        client = self.__dict__.pop("_async_client", None)
        if client is not None:
            await client.aclose()

    def test_connection(self) -> tuple[bool, str]:
        """Check the key and the host by listing one batch (the UI's Test button)."""
        try:
            self.client.call(_api.list_batches(1, None))
        except GeminiBatchError as exc:
            return False, str(exc)
        return True, f"Connected to the Gemini API at {self.settings.base_url} ({self.settings.api_version})."

    # -- files ----------------------------------------------------------------------------------

    def upload_file(
        self,
        source: str | os.PathLike[str] | BinaryIO | Any,
        *,
        display_name: str | None = None,
        mime_type: str = "jsonl",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> GeminiFile:
        """Upload a file with the resumable protocol, streamed in chunks; resume after a dropped connection.

        :param source: a local path, a binary file object, or an ``ObjectStoragePath``.
        :param display_name: shown in the Files API; defaults to the source's file name.
        :param mime_type: ``jsonl`` for batch input, as the docs use.
        :param chunk_bytes: bytes per chunk request, rounded to the server's granularity.
        """
        with open_source(source) as (stream, size, default_name):
            upload = ResumableUpload(
                self.client,
                stream,
                size,
                display_name=display_name or default_name,
                mime_type=mime_type,
                chunk_bytes=chunk_bytes,
            )
            uploaded = upload.run()
        self.log.info("Uploaded %s (%d bytes) as %s", uploaded.display_name, uploaded.size_bytes, uploaded.name)
        return uploaded

    def get_file(self, name: str) -> GeminiFile:
        """Get a file's metadata. A missing file answers 403 (``GeminiBatchPermissionError``), as the service does."""
        return self.client.call(_api.get_file(name))

    def list_files(self, *, page_size: int | None = None) -> Iterator[GeminiFile]:
        """Iterate over every file, fetching page after page."""
        return _pages(lambda token: self.client.call(_api.list_files(page_size, token)))

    def delete_file(self, name: str) -> None:
        """Delete a file."""
        self.client.call(_api.delete_file(name))

    def download_file(self, name: str, destination: str | os.PathLike[str] | Any) -> int:
        """Stream a file to a local path or ``ObjectStoragePath``; return the bytes written.

        A dropped connection resumes where it broke off: the written file is complete and correct.
        The file appears at ``destination`` only when complete (it is written under a temporary name
        in the same folder, then moved into place); after a failure nothing new is left there.

        :param name: ``files/...``.
        :param destination: a local path, a URI (``s3://...``, ``file://...``) or an ``ObjectStoragePath``.
        :raises GeminiBatchConnectionError: the connection kept dropping after every retry.
        """
        _api.resource_name(name, "files")
        written = 0
        with open_destination(destination) as out:
            for chunk in self.client.iter_file_bytes(name):
                out.write(chunk)
                written += len(chunk)
        self.log.info("Downloaded %s (%d bytes)", name, written)
        return written

    # -- batches --------------------------------------------------------------------------------

    def create_batch(
        self,
        model: str,
        *,
        requests: Sequence[Mapping[str, Any]] | None = None,
        input_file: str | None = None,
        display_name: str | None = None,
        extra_batch_fields: Mapping[str, Any] | None = None,
    ) -> Batch:
        """Create a ``generateContent`` batch from inline ``requests`` or an uploaded ``input_file``.

        Never resent when its outcome is unknown: a lost reply raises ``GeminiBatchAmbiguousCreateError``.

        :param requests: dicts, each ``{"key": ..., "request": {...}}``, ``{"request": ..., "metadata": ...}``
            or a bare ``GenerateContentRequest``.
        :param input_file: a ``files/...`` name of an uploaded JSONL file.
        :param extra_batch_fields: other ``batch`` fields, e.g. ``{"priority": "1"}``, sent as given.
        """
        return self._create(model, requests, input_file, display_name, extra_batch_fields, embeddings=False)

    def create_embeddings_batch(
        self,
        model: str,
        *,
        requests: Sequence[Mapping[str, Any]] | None = None,
        input_file: str | None = None,
        display_name: str | None = None,
        extra_batch_fields: Mapping[str, Any] | None = None,
    ) -> Batch:
        """Create an ``asyncBatchEmbedContent`` batch; requests are ``EmbedContentRequest`` bodies."""
        return self._create(model, requests, input_file, display_name, extra_batch_fields, embeddings=True)

    def _create(
        self,
        model: str,
        requests: Sequence[Mapping[str, Any]] | None,
        input_file: str | None,
        display_name: str | None,
        extra_batch_fields: Mapping[str, Any] | None,
        *,
        embeddings: bool,
    ) -> Batch:
        call = _api.create_batch(
            model,
            requests=requests,
            input_file=input_file,
            display_name=display_name,
            embeddings=embeddings,
            extra_batch_fields=extra_batch_fields,
        )
        try:
            batch = self.client.call(call)
        except GeminiBatchServerError as exc:
            if exc.http_status != 200:
                raise
            # The service said yes but the reply could not be read: a job exists and its name is lost,
            # exactly as when the reply never came. Resolved by lookup, never by creating again.
            raise ambiguous_create(call, "the reply could not be read") from exc
        self.log.info("Created batch %s on %s (%s)", batch.name, batch.model, batch.state.short_name)
        return batch

    def get_batch(self, name: str) -> Batch:
        """Get a batch job."""
        return self.client.call(_api.get_batch(name))

    def list_batches(self, *, page_size: int | None = None) -> Iterator[Batch]:
        """Iterate over every batch job, page after page (lists never include inline results)."""
        return _pages(lambda token: self.client.call(_api.list_batches(page_size, token)))

    def cancel_batch(self, name: str) -> None:
        """Ask the service to cancel a batch job (it turns CANCELLED shortly after)."""
        self.client.call(_api.cancel_batch(name))

    def cancel_quietly(self, name: str, why: str) -> bool:
        """Cancel a job on an exit path; a failure is logged, never raised over the error being reported.

        :param why: the reason, for the log: ``"the task was killed"``.
        :return: whether the service accepted the cancel.
        """
        try:
            self.cancel_batch(name)
        except GeminiBatchError as exc:
            self.log.error("Could not cancel batch %s after %s: %s", name, why, exc)
            return False
        self.log.warning("Cancelled batch %s because %s", name, why)
        return True

    def wait_for_batch(
        self,
        name: str,
        *,
        deadline: float,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        outage_limit: float = DEFAULT_OUTAGE_LIMIT,
    ) -> WaitOutcome:
        """Poll a job from this process until it is terminal, the deadline passes, or the service stays away.

        The worker-side twin of ``GeminiBatchTrigger``: both are loops around ``watch.BatchWatch``, so
        they end alike. Transient errors are ridden out for ``outage_limit`` seconds; nothing here
        cancels the job (the caller decides, see ``_completion.settle``).

        :param deadline: Unix time at which to stop waiting (outcome ``timeout``).
        :param poll_interval: seconds between polls.
        :param outage_limit: seconds of failing polls in a row that end the wait (outcome ``outage``).
        """
        watch = BatchWatch(name, poll_interval, deadline, outage_limit)
        while True:
            decision = self.poll_once(watch)
            if isinstance(decision, Finish):
                return decision.outcome
            time.sleep(decision.delay)

    def poll_once(self, watch: BatchWatch) -> Decision:
        """Poll the watched job once, hand the outcome (the job or the error) to ``watch``, log what it says."""
        outcome: Batch | GeminiBatchError
        try:
            outcome = self.get_batch(watch.batch_name)
        except GeminiBatchError as exc:
            outcome = exc
        decision = watch.observe(outcome, time.time())
        for line in decision.log:
            self.log.log(line.level, line.message, *line.args)
        return decision

    def find_batch_by_key(self, key: str, *, exclude: Collection[str] = ()) -> Batch | None:
        """The newest job whose display name carries the idempotency ``key`` (see ``keyed_display_name``).

        :param exclude: job names to pass over (jobs of earlier tries already known to have ended).
        """
        found = [batch for batch in self.find_batches_by_key(key) if batch.name not in exclude]
        if not found:
            return None
        found.sort(key=lambda batch: batch.create_time.timestamp() if batch.create_time else 0.0)
        if len(found) > 1:
            self.log.warning("%d jobs carry key %s; using the newest, %s", len(found), key, found[-1].name)
        # List replies never carry inline results: fetch the job itself.
        return self.get_batch(found[-1].name)

    def find_batches_by_key(self, key: str) -> list[Batch]:
        """Every job whose display name carries the idempotency ``key``, as listed (no inline results)."""
        marker = key_marker(key)
        return [batch for batch in self.list_batches() if (batch.display_name or "").endswith(marker)]

    def delete_batch(self, name: str) -> None:
        """Delete a batch job."""
        self.client.call(_api.delete_batch(name))

    def iter_results(
        self, batch_or_name: Batch | str, *, expected_keys: Iterable[str] | None = None
    ) -> Iterator[BatchResult]:
        """Iterate over a finished job's results: inline items, or the results file streamed line by line.

        Memory does not grow with the number of results. Results may come in any order: match on ``key``.

        What was read is checked against the job's ``batchStats.requestCount``, or against
        ``expected_keys`` when given: a results body sent without a length can end early and look
        whole, and users have seen results files and counts disagree (PROTOCOL.md, last note).
        A results file that ends short is read again, up to the connection's ``max_retries`` times,
        skipping the bytes already parsed, so no line is yielded twice. Without ``expected_keys`` results
        are counted by line (a job that reports no request count is not checked); with them, a key
        read twice counts once and the missing keys are named.

        :param batch_or_name: the job, or its ``batches/...`` name (then it is fetched).
        :param expected_keys: the keys of the job's requests, if known; they are held in memory.
        :raises GeminiBatchError: at once when the job has no results (it is not SUCCEEDED); while
            iterating, for a results line that is not a result object (the message gives its number).
        :raises GeminiBatchIncompleteResults: after the last result, when results are still missing.
        """
        batch = self.get_batch(batch_or_name) if isinstance(batch_or_name, str) else batch_or_name
        missing_keys: set[str | None] | None = None if expected_keys is None else set(expected_keys)
        expected_count = self.expected_result_count(batch, missing_keys)
        if missing_keys is not None and batch.batch_stats.request_count not in (0, expected_count):
            self.log.warning(
                "Batch %s reports %d requests; checking its results against the %d expected keys",
                batch.name,
                batch.batch_stats.request_count,
                expected_count,
            )
        if batch.inlined_responses is not None:
            return self._inline_results(batch.name, batch.inlined_responses, expected_count, missing_keys)
        if not batch.responses_file:
            raise GeminiBatchError(
                f"Batch {batch.name} has no results (state {batch.state.short_name}): only a SUCCEEDED job has them."
            )
        return self._file_results(batch.name, batch.responses_file, expected_count, missing_keys)

    @staticmethod
    def expected_result_count(batch: Batch, expected_keys: Collection[str | None] | None = None) -> int | None:
        """Return how many results ``iter_results`` expects: distinct keys, else ``batchStats.requestCount``.

        :param expected_keys: the keys of the job's requests, if known.
        :return: ``None`` when neither is known (the job reports no request count).
        """
        if expected_keys is not None:
            return len(set(expected_keys))
        return batch.batch_stats.request_count or None

    def _inline_results(
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
        self._check_read(batch_name, expected_count, read, missing_keys)

    def _file_results(
        self,
        batch_name: str,
        file_name: str,
        expected_count: int | None,
        missing_keys: set[str | None] | None,
    ) -> Iterator[BatchResult]:
        progress = _ResultsProgress()
        retry = self.settings.retry
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
        self._check_read(batch_name, expected_count, progress.read, missing_keys)

    def _check_read(
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

    # -- async twins (for triggers) -------------------------------------------------------------

    async def aget_batch(self, name: str) -> Batch:
        """Get a batch job."""
        return await (await self.aclient()).call(_api.get_batch(name))

    async def acancel_batch(self, name: str) -> None:
        """Ask the service to cancel a batch job."""
        await (await self.aclient()).call(_api.cancel_batch(name))

    async def adelete_batch(self, name: str) -> None:
        """Delete a batch job."""
        await (await self.aclient()).call(_api.delete_batch(name))

    async def alist_batches(self, *, page_size: int | None = None) -> AsyncIterator[Batch]:
        """Iterate over every batch job, page after page."""
        client = await self.aclient()
        token: str | None = None
        while True:
            page = await client.call(_api.list_batches(page_size, token))
            for batch in page.items:
                yield batch
            token = page.next_page_token
            if not token:
                return

    async def aget_file(self, name: str) -> GeminiFile:
        """Get a file's metadata."""
        return await (await self.aclient()).call(_api.get_file(name))


def _pages(fetch: Callable[[str | None], _api.Page[T]]) -> Iterator[T]:
    token: str | None = None
    while True:
        page = fetch(token)
        yield from page.items
        token = page.next_page_token
        if not token:
            return


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
    result, millions of times for a large job (``make bench``, row 2).

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


def _base_url(conn: Connection) -> str:
    host = (conn.host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        host = f"{conn.schema or 'https'}://{host}" if conn.schema in ("http", "https") else f"https://{host}"
    if conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    parsed = httpx.URL(host)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise GeminiBatchConfigError(
            f"Connection {conn.conn_id!r} has host {conn.host!r}: use a base URL like {DEFAULT_BASE_URL}."
        )
    return host


def _number(extra: Mapping[str, Any], key: str, default: float, conn_id: str) -> float:
    value = extra.get(key)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0:
        raise GeminiBatchConfigError(
            f"Connection {conn_id!r}: extra {key!r} must be a non-negative number, got {value!r}."
        )
    return number
