"""``GeminiBatchHook``: auth and every HTTP call to the Gemini Batch, Files, caching and Webhooks APIs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from airflow_provider_gemini_batch.batch_results import ResultsSummary
from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchConnectionError,
    GeminiBatchError,
    GeminiBatchServerError,
)
from airflow_provider_gemini_batch.hooks import _endpoints
from airflow_provider_gemini_batch.hooks._caching import GeminiCachingHook
from airflow_provider_gemini_batch.hooks._client import SyncClient, within
from airflow_provider_gemini_batch.hooks._durable import DurableSubmit
from airflow_provider_gemini_batch.hooks._endpoints import apages, pages
from airflow_provider_gemini_batch.hooks._errors import ambiguous_create
from airflow_provider_gemini_batch.hooks._media import GeminiMediaHook
from airflow_provider_gemini_batch.hooks._merge import ResultsSetWriter
from airflow_provider_gemini_batch.hooks._results import ResultsReader, expected_result_count
from airflow_provider_gemini_batch.hooks._webhooks import GeminiWebhooksHook
from airflow_provider_gemini_batch.idempotency import StateStore, key_marker
from airflow_provider_gemini_batch.models import Batch, BatchResult
from airflow_provider_gemini_batch.outcome import MissingResultsPolicy
from airflow_provider_gemini_batch.settings import DEFAULT_OUTAGE_LIMIT, DEFAULT_POLL_INTERVAL
from airflow_provider_gemini_batch.watch import BatchWatch, Decision, Finish, WaitOutcome

T = TypeVar("T")
P = TypeVar("P")


class GeminiBatchHook(GeminiMediaHook, GeminiCachingHook, GeminiWebhooksHook):
    """Talk to the Gemini API Batch Mode, Files API, context caches and webhooks through a ``gemini`` connection.

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

    # -- batches --------------------------------------------------------------------------------

    def create_batch(
        self,
        model: str,
        *,
        requests: Sequence[Mapping[str, Any]] | None = None,
        input_file: str | None = None,
        display_name: str | None = None,
        extra_batch_fields: Mapping[str, Any] | None = None,
        retry_quota: bool = True,
    ) -> Batch:
        """Create a ``generateContent`` batch from inline ``requests`` or an uploaded ``input_file``.

        Never resent when its outcome is unknown: a lost reply raises ``GeminiBatchAmbiguousCreateError``.
        A 429 RESOURCE_EXHAUSTED (quota) made no job, so it is retried like any 429, unless ``retry_quota``
        is False: then it is raised at once, for a caller that waits out quota elsewhere (``quota.py``).

        :param requests: dicts, each ``{"key": ..., "request": {...}}``, ``{"request": ..., "metadata": ...}``
            or a bare ``GenerateContentRequest``.
        :param input_file: a ``files/...`` name of an uploaded JSONL file.
        :param extra_batch_fields: other ``batch`` fields, e.g. ``{"priority": "1"}``, sent as given.
        """
        return self._create(
            model, requests, input_file, display_name, extra_batch_fields, embeddings=False, retry_quota=retry_quota
        )

    def create_embeddings_batch(
        self,
        model: str,
        *,
        requests: Sequence[Mapping[str, Any]] | None = None,
        input_file: str | None = None,
        display_name: str | None = None,
        extra_batch_fields: Mapping[str, Any] | None = None,
        retry_quota: bool = True,
    ) -> Batch:
        """Create an ``asyncBatchEmbedContent`` batch of ``EmbedContentRequest`` bodies; as ``create_batch``."""
        return self._create(
            model, requests, input_file, display_name, extra_batch_fields, embeddings=True, retry_quota=retry_quota
        )

    def _create(
        self,
        model: str,
        requests: Sequence[Mapping[str, Any]] | None,
        input_file: str | None,
        display_name: str | None,
        extra_batch_fields: Mapping[str, Any] | None,
        *,
        embeddings: bool,
        retry_quota: bool,
    ) -> Batch:
        call = _endpoints.create_batch(
            model,
            requests=requests,
            input_file=input_file,
            display_name=display_name,
            embeddings=embeddings,
            extra_batch_fields=extra_batch_fields,
            retry_quota=retry_quota,
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
        return self.client.call(_endpoints.get_batch(name))

    def list_batches(self, *, page_size: int | None = None) -> Iterator[Batch]:
        """Iterate over every batch job, page after page (lists never include inline results)."""
        return pages(lambda token: self.client.call(_endpoints.list_batches(page_size, token)))

    def cancel_batch(self, name: str) -> None:
        """Ask the service to cancel a batch job (it turns CANCELLED shortly after)."""
        self.client.call(_endpoints.cancel_batch(name))

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
        cancels the job (the caller decides, see ``outcome.settle``).

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

    def finished_outcome(self, batch_or_name: Batch | str) -> WaitOutcome | None:
        """Look once at a job before waiting for it: its ``terminal`` outcome if it has finished, else ``None``.

        Operators and the sensor ask this before deferring, so that a job already done is not waited
        for. A failed look is ``None`` too: judging errors is the wait's job (it rides out outages).
        """
        batch = batch_or_name if isinstance(batch_or_name, Batch) else None
        if batch is None or not batch.state.is_terminal:
            try:
                batch = self.get_batch(batch_or_name if isinstance(batch_or_name, str) else batch_or_name.name)
            except GeminiBatchError:
                return None
        return WaitOutcome("terminal", batch, f"Batch {batch.progress}") if batch.state.is_terminal else None

    def poll_once(self, watch: BatchWatch, *, log: Any = None) -> Decision:
        """Poll the watched job once, hand the outcome (the job or the error) to ``watch``, log what it says.

        :param log: where the watch's lines go (default: the hook's logger).
        """
        outcome: Batch | GeminiBatchError
        try:
            outcome = self.get_batch(watch.batch_name)
        except GeminiBatchError as exc:
            outcome = exc
        return _observed(watch, outcome, log or self.log)

    async def apoll_once(self, watch: BatchWatch, *, log: Any = None) -> Decision:
        """The async twin of ``poll_once``, for the trigger; a poll (retries included) ends by the deadline.

        The client's retries honour server delays of minutes: they must never outlast the wait's deadline.
        """
        outcome: Batch | GeminiBatchError
        try:
            outcome = await within(self.aget_batch(watch.batch_name), max(watch.deadline - time.time(), 1.0))
        except TimeoutError:
            outcome = GeminiBatchConnectionError(f"Polling {watch.batch_name} did not finish before the deadline")
        except GeminiBatchError as exc:
            outcome = exc
        return _observed(watch, outcome, log or self.log)

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

    def submit_durably(
        self,
        prepare: Callable[[], P],
        create: Callable[[P], Batch],
        *,
        key: str,
        store: StateStore | None,
        resubmit_on_failure: bool = True,
        look_up_without_store: bool = False,
    ) -> Batch:
        """Submit at most one job under idempotency ``key`` across a task's tries, crashes and lost replies.

        A job recorded by an earlier try is reconnected to (running), returned (SUCCEEDED) or replaced
        (failed, cancelled, expired; unless ``resubmit_on_failure=False``). Before a create, the intent
        is recorded in ``store``; a create of unknown outcome is resolved by looking the key up until it
        can no longer land, never by sending it again at once.

        :param prepare: validate and upload the input (run once, before the intent is recorded).
        :param create: create the job from what ``prepare`` returned; its display name must carry ``key``
            (``idempotency.keyed_display_name``) so that lookups find it.
        :param store: the task state store (``context["task_state_store"]``, Airflow 3.3+), or ``None``.
        :param look_up_without_store: without a store, look the key up first (a retry on Airflow < 3.3).
        """
        return DurableSubmit(self, store).submit(
            key, prepare, create, resubmit_on_failure=resubmit_on_failure, look_up_without_store=look_up_without_store
        )

    def cancel_late_duplicates(self, keep: str, *, store: StateStore | None) -> None:
        """Cancel jobs that a create of unknown outcome made after ``keep`` was used instead.

        The key is the one ``submit_durably`` recorded in ``store``; without a store nothing is done.
        """
        DurableSubmit(self, store).cancel_late_duplicates(keep)

    def delete_batch(self, name: str) -> None:
        """Delete a batch job."""
        self.client.call(_endpoints.delete_batch(name))

    def iter_results(
        self, batch_or_name: Batch | str, *, expected_keys: Iterable[str] | None = None
    ) -> Iterator[BatchResult]:
        """Iterate over a finished job's results: inline items, or the results file streamed line by line.

        Memory does not grow with the number of results. Results may come in any order: match on ``key``.

        What was read is checked against the job's ``batchStats.requestCount``, or against
        ``expected_keys`` when given: a results body sent without a length can end early and look
        whole, and users have seen results files and counts disagree (``docs/protocol.md``, "Results
        files and counts can disagree").
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
        return ResultsReader(self.client, self.log).read(batch, expected_keys)

    def sample_errors(
        self, batch: Batch, *, limit: int = 3, max_lines: int = 10_000, max_bytes: int = 8 * 1024 * 1024
    ) -> list[BatchResult]:
        """Return the first ``limit`` failed requests of a finished job, from a bounded look at its results.

        For the message of a job that fails its partial-failure policy (``outcome.wants_error_sample``),
        so the user sees why without downloading anything. Reading stops at ``limit`` errors,
        ``max_lines`` results or ``max_bytes`` of the results file, whichever comes first; each result
        keeps only its key and error. Best effort: each request is tried once, and a look that fails
        is logged and what was read is returned, never raised over the failure it would explain.

        :param batch: the finished job. One carrying neither inline results nor a results file (as a
            trigger event carries an inline job) is fetched first.
        """
        try:
            if batch.inlined_responses is None and not batch.responses_file:
                batch = self.get_batch(batch.name)  # A trigger event's job carries no inline results.
        except GeminiBatchError as exc:
            self.log.warning("Could not read the first failed requests of %s: %s", batch.name, exc)
            return []
        # One attempt per request: the task is failing already, and waiting out an unavailable service
        # (its retries honour server delays of minutes) would only delay saying so.
        one_attempt = SyncClient(
            replace(self.settings, retry=replace(self.settings.retry, max_retries=0)), self._transport
        )
        try:
            return ResultsReader(one_attempt, self.log).sample_errors(batch, limit, max_lines, max_bytes)
        finally:
            one_attempt.close()

    def write_results(
        self,
        batch_or_name: Batch | str,
        destination: Any,
        *,
        expected_keys: Iterable[str] | None = None,
        skip_if_complete: bool = False,
        media_destination: Any = None,
        keep_inline_media: bool = False,
    ) -> ResultsSummary:
        """Write a finished job's results to one JSONL file, a normalised line per result; all or nothing.

        Each line is the service's, plus ``text`` (``embedding`` for an embeddings job) and ``usage``
        (``batch_results.ResultsWriter``). Results are read and checked as ``iter_results`` reads them;
        the file appears at its destination only when every result is in it (``open_destination``).

        :param destination: a ``.jsonl`` file, a ``.jsonl.gz`` file (written gzip-compressed), or else a
            folder, where the file is named after the job (``results_path``): local, a URI or an
            ``ObjectStoragePath``.
        :param skip_if_complete: when the destination already holds this job's complete results (as a
            write of them left them, checked against the same ``expected_keys``), download nothing and
            return that write's summary. A complete write leaves ``.<file name>.complete.json`` beside
            the file (the job's name, the counts, the file's size); a partial, foreign or altered file
            is written over.
        :param media_destination: a folder (local, a URI or an ``ObjectStoragePath``) where every
            ``inlineData`` part (an image model's images) is written as ``{key}-{n}.{ext}``, decoded as
            it streams; the line then holds ``"file"`` in place of the base64, and ``"media"``, the list
            of its files. The files appear with the results file, not before (``docs/media.md``).
        :param keep_inline_media: keep the base64 in the line next to ``"file"``.
        :raises GeminiBatchError: the job did not succeed; nothing is written then.
        :raises GeminiBatchIncompleteResults: results are missing after reading them again.
        """
        batch = self.get_batch(batch_or_name) if isinstance(batch_or_name, str) else batch_or_name
        reader = ResultsReader(self.client, self.log)
        return reader.write(
            batch,
            destination,
            expected_keys,
            skip_if_complete=skip_if_complete,
            media_destination=media_destination,
            keep_inline_media=keep_inline_media,
        )

    def write_results_set(
        self,
        batch_names: Sequence[str | None],
        destination: Any,
        *,
        input_paths: Sequence[Any] | None = None,
        policy: MissingResultsPolicy | None = None,
        skip_if_complete: bool = True,
        media_destination: Any = None,
        keep_inline_media: bool = False,
    ) -> dict[str, Any]:
        """Write the results of a sharded input's jobs into one folder: a file per shard, and ``manifest.json``.

        Each job's results are written as ``write_results`` writes them (the same file names, so a
        second run skips complete shards). A job that did not succeed, or whose results stay
        incomplete, or a ``None`` name, writes nothing: its requests count as missing. With
        ``input_paths`` (the split's shards), every input key is accounted for across the shards and
        the missing ones are listed. The manifest (returned, and written to ``manifest.json``) has the
        totals, each shard's counts, ``missing_keys`` and ``complete``.

        :param batch_names: the jobs, in shard order (a mapped submit task's XCom).
        :param input_paths: the shards' input files, to account for every key (held in memory while merging).
        :param policy: how many requests may lack a result (default: none may).
        :param media_destination: a folder for the media files, as for ``write_results``: each job's
            in a folder of their own in it, named by the job's id; the manifest counts them
            (``media_count``, ``media_bytes``, in total and per shard).
        :param keep_inline_media: as for ``write_results``.
        :raises GeminiBatchIncompleteResults: more results are missing than ``policy`` allows (the
            manifest is written first, listing them).
        """
        writer = ResultsSetWriter(self, policy or MissingResultsPolicy())
        return writer.write(
            list(batch_names),
            destination,
            input_paths=input_paths,
            skip_if_complete=skip_if_complete,
            media_destination=media_destination,
            keep_inline_media=keep_inline_media,
        )

    @staticmethod
    def expected_result_count(batch: Batch, expected_keys: Collection[str | None] | None = None) -> int | None:
        """Return how many results ``iter_results`` expects: distinct keys, else ``batchStats.requestCount``.

        :param expected_keys: the keys of the job's requests, if known.
        :return: ``None`` when neither is known (the job reports no request count).
        """
        return expected_result_count(batch, expected_keys)

    # -- async twins (for triggers) -------------------------------------------------------------

    async def aget_batch(self, name: str) -> Batch:
        """Get a batch job."""
        return await (await self.aclient()).call(_endpoints.get_batch(name))

    async def acancel_batch(self, name: str) -> None:
        """Ask the service to cancel a batch job."""
        await (await self.aclient()).call(_endpoints.cancel_batch(name))

    async def adelete_batch(self, name: str) -> None:
        """Delete a batch job."""
        await (await self.aclient()).call(_endpoints.delete_batch(name))

    async def alist_batches(self, *, page_size: int | None = None) -> AsyncIterator[Batch]:
        """Iterate over every batch job, page after page."""
        client = await self.aclient()
        async for batch in apages(lambda token: client.call(_endpoints.list_batches(page_size, token))):
            yield batch


def _observed(watch: BatchWatch, outcome: Batch | GeminiBatchError, log: Any) -> Decision:
    """Hand one poll's outcome to ``watch`` at the current time and log what it decided."""
    decision = watch.observe(outcome, time.time())
    for line in decision.log:
        log.log(line.level, line.message, *line.args)
    return decision
