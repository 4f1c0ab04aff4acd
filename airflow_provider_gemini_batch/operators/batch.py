"""Operators on batch jobs: submit (and wait), get, cancel, delete."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_gemini_batch.batch_input import PreparedInput
from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchError,
    GeminiBatchInputError,
    GeminiBatchNotFoundError,
    GeminiBatchRateLimitError,
    GeminiBatchTimeout,
)
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.idempotency import (
    idempotency_key,
    keyed_display_name,
)
from airflow_provider_gemini_batch.links import GeminiBatchLink
from airflow_provider_gemini_batch.models import Batch
from airflow_provider_gemini_batch.outcome import ExitActions, FailurePolicy, settle, wants_error_sample
from airflow_provider_gemini_batch.quota import quota_wait_seconds
from airflow_provider_gemini_batch.settings import (
    DEFAULT_CANCEL_POLL_INTERVAL,
    DEFAULT_CANCEL_WAIT_TIMEOUT,
    DEFAULT_OUTAGE_LIMIT,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_TIMEOUT,
)
from airflow_provider_gemini_batch.storage import require_filesystem
from airflow_provider_gemini_batch.triggers.gemini_batch import GeminiBatchTrigger
from airflow_provider_gemini_batch.triggers.quota import GeminiQuotaWaitTrigger
from airflow_provider_gemini_batch.watch import WaitOutcome

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _task_state_store(context: Context) -> Any:
    """The task state store (Airflow 3.3+), else ``None``."""
    try:
        return context.get("task_state_store")
    except AttributeError:
        return None


class GeminiBatchBaseOperator(BaseOperator):
    """Base of every operator here: the connection id and a hook built on first use.

    :param gemini_conn_id: the Airflow connection of type ``gemini`` (default ``gemini_default``).
    """

    ui_color = "#e8f0fe"

    def __init__(self, *, gemini_conn_id: str = GeminiBatchHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gemini_conn_id = gemini_conn_id

    @cached_property
    def hook(self) -> GeminiBatchHook:
        """The hook, built lazily: constructing an operator does no I/O."""
        return GeminiBatchHook(gemini_conn_id=self.gemini_conn_id)


class GeminiSubmitBatchOperator(GeminiBatchBaseOperator):
    """Submit a Gemini batch job and, by default, wait for it in the triggerer, holding no worker slot.

    Pass exactly one input. Inline requests whose body would exceed the service's 20 MB limit are
    uploaded as a JSONL file for you. Input is validated before anything is uploaded or created.
    The batch name is pushed to XCom (key ``batch_name``) the moment the job exists, and returned;
    a file job's input file name is pushed too (key ``input_file``), for cleanup tasks.

    Durable by default: a task instance pays for one job at a time. A retry (or a worker crash, or
    a clear) reconnects to a job that is still running, returns one that SUCCEEDED, and submits a
    fresh job for one that ended FAILED, CANCELLED or EXPIRED; a create whose outcome is unknown is
    looked up by key, never blindly sent again (see ``airflow_provider_gemini_batch.idempotency``).

    Quota: a create refused 429 RESOURCE_EXHAUSTED (the model's enqueued-token limit, the project's
    concurrent-jobs limit) made no job, so the task waits and sends it again: deferred, holding no
    worker slot (in the worker with ``deferrable=False``), for the service's ``RetryInfo`` delay (else a
    backoff from 30 s, doubling, up to 10 minutes), until ``timeout`` after the first create. An input
    uploaded for the create is kept and reused. Mapped over shards
    (``.partial(...).expand(input_path=...)``), shards past the quota wait their turn this way.

    :param model: e.g. ``gemini-2.5-flash`` (``models/`` is added).
    :param requests: inline requests: ``{"key", "request"}`` dicts, or flat records holding
        ``key_field`` plus the request body. Usually an upstream task's XCom.
    :param input_file: a ``files/...`` name already uploaded (e.g. ``GeminiUploadFileOperator``'s XCom).
    :param input_path: a local path or object-storage URI/``ObjectStoragePath`` of a JSONL file; uploaded for you.
    :param display_name: the job's display name.
    :param key_field: the field of ``requests`` records that holds each request's key.
    :param wait_for_completion: wait until the job is terminal (else return right after submitting).
    :param deferrable: wait in the triggerer (default True, whatever ``[operators] default_deferrable``
        says: a job can run for a day, and a worker-side wait holds a slot all that time).
        ``False`` polls from the worker, with the same outcomes.
    :param poll_interval: seconds between status checks.
    :param timeout: wall-clock limit on the wait for the job (seconds or timedelta, default 48 h), and,
        separately, on waiting out quota before the job is created.
    :param outage_limit: how long the wait rides out an unreachable service (seconds or timedelta,
        default 1 h); then the task fails and the job is left running, for a retry to reconnect to.
    :param cancel_on_kill: cancel the job when the task is killed (worker-side wait) or, on Airflow
        3.3+, marked failed or succeeded while deferred. Clearing a deferred task leaves the job
        running: the task's next try reconnects to it.
    :param cancel_on_timeout: cancel the job when ``timeout`` passes.
    :param cancel_on_error: cancel the job when the wait ends on a permanent error (401/403, invalid
        argument). An outage never cancels.
    :param max_failed_requests: fail the task when more requests than this failed (job SUCCEEDED).
    :param max_failed_ratio: fail the task when a larger share than this failed (0.0 to 1.0).
        With neither set, the task fails only when every request failed.
    :param extra_batch_fields: other fields of the create body's ``batch`` object, passed as given,
        e.g. ``{"priority": "10"}``.
    :param webhook_uris: absolute http(s) URLs the service POSTs this job's completion event to,
        instead of the project's registered webhooks (the job's ``webhookConfig.uris``), e.g. the
        provider's receiver, ``https://<airflow>/gemini-batch/webhooks/<conn id>``. A single string is
        one URL (templated).
    :param webhook_metadata: a JSON-serialisable dict the completion event carries back
        (``webhookConfig.user_metadata``), e.g. ``{"dag_run": "{{ run_id }}"}`` (templated). Both are
        checked before anything is uploaded; neither may be combined with a ``webhookConfig`` in
        ``extra_batch_fields``.
    :param durable: submit once per task instance (see above). The job's display name carries a key
        derived from dag_id, task_id, run_id and map_index; the job's name is kept in the task state
        store (Airflow 3.3+) or found by that key (3.0-3.2).
    :param resubmit_on_failure: with ``durable``, submit a fresh job when the earlier try's job ended
        FAILED, CANCELLED or EXPIRED (default). ``False`` reports that outcome again without paying.
    :param cached_content: a context cache (``cachedContents/...``, e.g. ``GeminiCreateCachedContentOperator``'s
        XCom; templated) set as ``cachedContent`` on every request that names none; a JSONL ``input_path``
        is rewritten line by line on its way to the upload. The cache must be on ``model`` and live at
        least ``[gemini_batch] cache_expiry_margin_hours`` more, else the task fails before anything is
        uploaded (``docs/caching-and-cost.md``).
    :param extend_cache_ttl: when the cache would expire within that margin, set its TTL to this
        (seconds or a ``timedelta``, from now) instead of failing.
    :param max_input_tokens: refuse, before anything is uploaded, an input whose estimated input tokens
        (a sample counted with ``countTokens``, extrapolated by bytes; context-cache tokens included once per
        request) exceed this. The estimate's error margin: ``docs/caching-and-cost.md``.
    """

    operator_extra_links = (GeminiBatchLink(),)
    template_fields: Sequence[str] = (
        "model",
        "requests",
        "input_file",
        "input_path",
        "display_name",
        "extra_batch_fields",
        "webhook_uris",
        "webhook_metadata",
        "cached_content",
        "gemini_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "requests": "json",
        "extra_batch_fields": "json",
        "webhook_metadata": "json",
    }
    #: The kind of job: ``GeminiSubmitEmbeddingsBatchOperator`` sets it; there is no argument to contradict it.
    embeddings: ClassVar[bool] = False

    def __init__(
        self,
        *,
        model: str,
        requests: Any = None,
        input_file: str | None = None,
        input_path: Any = None,
        display_name: str | None = None,
        key_field: str = "key",
        wait_for_completion: bool = True,
        deferrable: bool = True,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_WAIT_TIMEOUT,
        outage_limit: float | timedelta = DEFAULT_OUTAGE_LIMIT,
        cancel_on_kill: bool = True,
        cancel_on_timeout: bool = True,
        cancel_on_error: bool = True,
        max_failed_requests: int | None = None,
        max_failed_ratio: float | None = None,
        extra_batch_fields: dict[str, Any] | None = None,
        webhook_uris: list[str] | str | None = None,
        webhook_metadata: dict[str, Any] | None = None,
        durable: bool = True,
        resubmit_on_failure: bool = True,
        cached_content: str | None = None,
        extend_cache_ttl: float | timedelta | None = None,
        max_input_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        given = [
            name
            for name, value in (("requests", requests), ("input_file", input_file), ("input_path", input_path))
            if value is not None
        ]
        if len(given) != 1:
            raise GeminiBatchInputError(
                f"{self.task_id}: pass exactly one of requests, input_file or input_path "
                f"(got {', '.join(given) or 'none'})."
            )
        self.model = model
        self.requests = requests
        self.input_file = input_file
        require_filesystem(input_path, what="input_path")
        self.input_path = input_path
        self.display_name = display_name
        self.key_field = key_field
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = _seconds(timeout)
        self.outage_limit = _seconds(outage_limit)
        self.cancel_on_kill = cancel_on_kill
        self.exit_actions = ExitActions(cancel_on_timeout=cancel_on_timeout, cancel_on_error=cancel_on_error)
        self.extra_batch_fields = extra_batch_fields
        self.webhook_uris = webhook_uris
        self.webhook_metadata = webhook_metadata
        self.failure_policy = FailurePolicy(max_failed_requests, max_failed_ratio)
        self.durable = durable
        self.resubmit_on_failure = resubmit_on_failure
        self.cached_content = cached_content
        self.extend_cache_ttl = extend_cache_ttl
        self.max_input_tokens = max_input_tokens
        self._batch_name: str | None = None
        self._batch_fields: dict[str, Any] | None = None
        self._prepared: PreparedInput | None = None

    def execute(self, context: Context) -> str:
        self._batch_fields = self._checked_batch_fields()  # Before anything is uploaded.
        return self._submit_and_wait(context, time.time() + self.wait_timeout, 0)

    def execute_after_quota_wait(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after waiting out quota in the triggerer: send the create again (``quota.py``)."""
        if not isinstance(event, dict) or event.get("status") != "quota_wait_over":
            raise GeminiBatchError(f"{self.task_id}: resumed after a quota wait with an unexpected event {event!r}")
        self._batch_fields = self._checked_batch_fields()
        if event.get("uploaded_input_file"):  # Uploaded before the refused create: not uploaded again.
            self._prepared = PreparedInput(input_file=event["uploaded_input_file"])
        return self._submit_and_wait(context, float(event["quota_deadline"]), int(event["attempt"]))

    def _submit_and_wait(self, context: Context, quota_deadline: float, attempt: int) -> str:
        while True:
            try:
                batch = self._submit_durably(context) if self.durable else self._create_once(context)
                break
            except GeminiBatchRateLimitError as error:
                delay = self._quota_wait(error, quota_deadline, attempt)
                attempt += 1
            if self.deferrable:
                uploaded = self._prepared.input_file if self._prepared is not None else None
                state = {"quota_deadline": quota_deadline, "attempt": attempt, "uploaded_input_file": uploaded}
                self.defer(
                    trigger=GeminiQuotaWaitTrigger(time.time() + delay, state), method_name="execute_after_quota_wait"
                )
            time.sleep(delay)
        self._batch_name = batch.name
        context["ti"].xcom_push(key="batch_name", value=batch.name)
        if batch.input_file:  # Uploaded here from input_path or oversized inline requests: cleanup needs it.
            context["ti"].xcom_push(key="input_file", value=batch.input_file)
        if not self.wait_for_completion:
            return batch.name
        deadline = time.time() + self.wait_timeout
        if self.deferrable or batch.state.is_terminal:  # Returned by an earlier try, or done already.
            finished = self.hook.finished_outcome(batch)
            if finished is not None:
                return self._finish(context, finished)
        if self.deferrable:
            self.defer(
                trigger=GeminiBatchTrigger(
                    batch_name=batch.name,
                    gemini_conn_id=self.gemini_conn_id,
                    poll_interval=self.poll_interval,
                    deadline=deadline,
                    outage_limit=self.outage_limit,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
            )
        outcome = self.hook.wait_for_batch(
            batch.name, deadline=deadline, poll_interval=self.poll_interval, outage_limit=self.outage_limit
        )
        return self._finish(context, outcome)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger fired: validate its event and turn it into success or a distinct error."""
        return self._finish(context, WaitOutcome.from_event(event))

    def _finish(self, context: Context, outcome: WaitOutcome) -> str:
        """End the task from how the wait ended: the same for the trigger's event and the worker's wait."""
        if self.durable:
            self.hook.cancel_late_duplicates(outcome.batch.name, store=_task_state_store(context))
        sample = self.hook.sample_errors(outcome.batch) if wants_error_sample(outcome, self.failure_policy) else []
        return settle(outcome, self.failure_policy, self.exit_actions, self.hook.cancel_quietly, sample).name

    def on_kill(self) -> None:
        if self._batch_name and self.cancel_on_kill:
            self.hook.cancel_quietly(self._batch_name, "the task was killed")

    # -- submitting ------------------------------------------------------------------------------

    def _quota_wait(self, error: GeminiBatchRateLimitError, deadline: float, attempt: int) -> float:
        """Seconds to wait before sending a create refused for quota again; raise once ``timeout`` has passed."""
        delay = quota_wait_seconds(attempt, error.retry_after, time.time(), deadline)
        if delay is None:
            raise GeminiBatchRateLimitError(
                error.http_status,
                error.status,
                error.service_message,
                hint=(
                    f"The service refused the create for quota {attempt + 1} time(s) until timeout "
                    f"({self.wait_timeout:.0f} s) passed; no job was created. Raise timeout, run fewer jobs "
                    "at once (max_active_tis_per_dag), or split the input into smaller shards"
                ),
            ) from error
        self.log.warning(
            "Waiting for quota: the service refused the create (HTTP 429 %s: %s), so no job was created. "
            "Sending it again in %.1f s, %s; giving up at %s (timeout)",
            error.status or "RESOURCE_EXHAUSTED",
            error.service_message,
            delay,
            "deferred, holding no worker slot" if self.deferrable else "waiting in the worker",
            datetime.fromtimestamp(deadline, tz=timezone.utc).isoformat(timespec="seconds"),
        )
        return delay

    def _create_once(self, context: Context) -> Batch:
        """Create a job, with no durable bookkeeping (``durable=False``)."""
        return self._create(self._prepare(), self.display_name)

    def _submit_durably(self, context: Context) -> Batch:
        """Reconnect to, return, or replace the job of an earlier try; create one only when none may exist."""
        ti = context["ti"]
        key = idempotency_key(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1))
        display_name = keyed_display_name(self.display_name, key, f"{ti.dag_id}.{ti.task_id}")
        return self.hook.submit_durably(
            self._prepare,
            lambda prepared: self._create(prepared, display_name),
            key=key,
            store=_task_state_store(context),
            resubmit_on_failure=self.resubmit_on_failure,
            look_up_without_store=getattr(ti, "try_number", 1) > 1,
        )

    def _prepare(self) -> PreparedInput:
        """Check, validate and upload the input, once per task execution (a create refused for quota reuses it)."""
        if self._prepared is None:
            # Every fileData.fileUri exists, is ACTIVE and outlives the queue: before any upload or create.
            self.hook.check_media_references(requests=self.requests, input_path=self.input_path)
            self._prepared = self.hook.prepare_submit_input(
                model=self.model,
                cached_content=self.cached_content or None,
                extend_cache_ttl=self.extend_cache_ttl,
                max_input_tokens=self.max_input_tokens,
                requests=self.requests,
                input_file=self.input_file,
                input_path=self.input_path,
                display_name=self.display_name,
                key_field=self.key_field,
                kind="embed" if self.embeddings else "generate",
            )
        return self._prepared

    def _create(self, prepared: PreparedInput, display_name: str | None) -> Batch:
        create = self.hook.create_embeddings_batch if self.embeddings else self.hook.create_batch
        return create(
            self.model,
            requests=prepared.requests,
            input_file=prepared.input_file,
            display_name=display_name,
            extra_batch_fields=self._batch_fields,
            retry_quota=False,  # Waited out here, deferred: see _submit_and_wait.
        )

    def _checked_batch_fields(self) -> dict[str, Any] | None:
        """``extra_batch_fields`` plus the ``webhookConfig`` of ``webhook_uris`` / ``webhook_metadata``, checked."""
        config = self.hook.webhook_config(self.webhook_uris, self.webhook_metadata)
        if not config:
            return self.extra_batch_fields
        fields = dict(self.extra_batch_fields or {})
        given = [name for name in ("webhookConfig", "webhook_config") if name in fields]
        if given:
            raise GeminiBatchInputError(
                f"{self.task_id}: extra_batch_fields has {given[0]!r} and webhook_uris / webhook_metadata are set: "
                "pass the webhook settings one way, preferably webhook_uris and webhook_metadata."
            )
        fields["webhookConfig"] = config
        return fields


class GeminiSubmitEmbeddingsBatchOperator(GeminiSubmitBatchOperator):
    """``GeminiSubmitBatchOperator`` for embeddings (``asyncBatchEmbedContent``): requests are
    ``EmbedContentRequest`` bodies such as ``{"content": {"parts": [{"text": "..."}]}, "outputDimensionality": 8}``.
    """

    embeddings: ClassVar[bool] = True


class GeminiGetBatchOperator(GeminiBatchBaseOperator):
    """Get a batch job and return its summary (state, counts, results file; never results).

    :param batch_name: ``batches/...`` (templated; usually the submit task's XCom).
    """

    operator_extra_links = (GeminiBatchLink(),)
    template_fields: Sequence[str] = ("batch_name", "gemini_conn_id")

    def __init__(self, *, batch_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_name = batch_name

    def execute(self, context: Context) -> dict[str, Any]:
        batch = self.hook.get_batch(self.batch_name)
        self.log.info("Batch %s: %s", batch.name, batch.progress)
        return batch.summary()


# The cancel operator's wait never cancels again on its way out: it has already asked to.
_NEVER_CANCEL = ExitActions(cancel_on_timeout=False, cancel_on_error=False)


class GeminiCancelBatchOperator(GeminiBatchBaseOperator):
    """Cancel a batch job; optionally wait until it is terminal. A job already finished is left as is.

    :param batch_name: ``batches/...`` (templated).
    :param wait_for_termination: poll until the job reaches a terminal state.
    :param poll_interval: seconds between polls while waiting.
    :param timeout: longest wait in seconds (or timedelta).
    """

    operator_extra_links = (GeminiBatchLink(),)
    template_fields: Sequence[str] = ("batch_name", "gemini_conn_id")

    def __init__(
        self,
        *,
        batch_name: str,
        wait_for_termination: bool = False,
        poll_interval: float = DEFAULT_CANCEL_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_CANCEL_WAIT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_name = batch_name
        self.wait_for_termination = wait_for_termination
        self.poll_interval = poll_interval
        self.wait_timeout = _seconds(timeout)

    def execute(self, context: Context) -> dict[str, Any]:
        batch = self.hook.get_batch(self.batch_name)
        if batch.state.is_terminal:
            self.log.info("Batch %s is already %s; nothing to cancel", batch.name, batch.state.short_name)
            return batch.summary()
        self.hook.cancel_batch(batch.name)
        self.log.info("Asked the service to cancel batch %s", batch.name)
        if self.wait_for_termination:
            deadline = time.time() + self.wait_timeout
            outcome = self.hook.wait_for_batch(batch.name, deadline=deadline, poll_interval=self.poll_interval)
            if outcome.kind == "timeout":
                raise GeminiBatchTimeout(
                    batch.name,
                    outcome.batch.state.value,
                    outcome.message,
                    hint="The service accepted the cancel but the job had not stopped; raise timeout to wait longer.",
                )
            if outcome.kind != "terminal":  # An outage or an error: the same exceptions as every wait.
                settle(outcome, FailurePolicy(), _NEVER_CANCEL, self.hook.cancel_quietly)
            batch = outcome.batch
        return batch.summary()


class GeminiDeleteBatchOperator(GeminiBatchBaseOperator):
    """Delete a batch job. Fits cleanup tasks with ``trigger_rule="all_done"``.

    :param batch_name: ``batches/...`` (templated).
    :param cancel_if_running: cancel a job that is still running before deleting it.
    :param ignore_missing: succeed when the job does not exist (already deleted).
    """

    template_fields: Sequence[str] = ("batch_name", "gemini_conn_id")

    def __init__(
        self, *, batch_name: str, cancel_if_running: bool = True, ignore_missing: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.batch_name = batch_name
        self.cancel_if_running = cancel_if_running
        self.ignore_missing = ignore_missing

    def execute(self, context: Context) -> None:
        try:
            if self.cancel_if_running and not self.hook.get_batch(self.batch_name).state.is_terminal:
                self.hook.cancel_batch(self.batch_name)
            self.hook.delete_batch(self.batch_name)
        except GeminiBatchNotFoundError:
            if not self.ignore_missing:
                raise
            self.log.info("Batch %s does not exist; nothing to delete", self.batch_name)
            return
        self.log.info("Deleted batch %s", self.batch_name)
