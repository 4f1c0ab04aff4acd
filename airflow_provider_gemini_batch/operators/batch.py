"""Operators on batch jobs: submit (and wait), get, cancel, delete."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_gemini_batch._completion import (
    ExitActions,
    FailurePolicy,
    cancel_quietly,
    finish_from_event,
    raise_for_outcome,
    timeout_error,
    wait_until_terminal,
)
from airflow_provider_gemini_batch._idempotency import (
    find_earlier_job,
    idempotency_key,
    keyed_display_name,
    remember,
    resolve_ambiguous_create,
)
from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchAmbiguousCreateError,
    GeminiBatchError,
    GeminiBatchInputError,
    GeminiBatchNotFoundError,
)
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import Batch, BatchState
from airflow_provider_gemini_batch.operators._inputs import prepare_input
from airflow_provider_gemini_batch.triggers.gemini_batch import GeminiBatchTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

DEFAULT_TIMEOUT = timedelta(hours=48)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


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
    """Submit a Gemini batch job and, by default, wait for it without holding a worker slot.

    Pass exactly one input. Inline requests whose body would exceed the service's 20 MB limit are
    uploaded as a JSONL file for you. Input is validated before anything is uploaded or created.
    The batch name is pushed to XCom (key ``batch_name``) the moment the job exists, and returned;
    a file job's input file name is pushed too (key ``input_file``), for cleanup tasks.

    :param model: e.g. ``gemini-2.5-flash`` (``models/`` is added).
    :param requests: inline requests: ``{"key", "request"}`` dicts, or flat records holding
        ``key_field`` plus the request body. Usually an upstream task's XCom.
    :param input_file: a ``files/...`` name already uploaded (e.g. ``GeminiUploadFileOperator``'s XCom).
    :param input_path: a local path or object-storage URI/``ObjectStoragePath`` of a JSONL file; uploaded for you.
    :param display_name: the job's display name.
    :param key_field: the field of ``requests`` records that holds each request's key.
    :param embeddings: submit an embeddings job (``asyncBatchEmbedContent``) instead of ``generateContent``.
    :param wait_for_completion: wait until the job is terminal (else return right after submitting).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between status checks.
    :param timeout: wall-clock limit on the wait (seconds or timedelta, default 48 h).
    :param cancel_on_kill: cancel the job when the task is killed (sync wait) or, on Airflow 3.3+,
        marked failed or cleared while deferred.
    :param cancel_on_timeout: cancel the job when ``timeout`` passes.
    :param cancel_on_error: cancel the job when the wait gives up on repeated errors (the job's state
        can no longer be watched, so it would run, and bill, unobserved).
    :param max_failed_requests: fail the task when more requests than this failed (job SUCCEEDED).
    :param max_failed_ratio: fail the task when a larger share than this failed (0.0 to 1.0).
        With neither set, the task fails only when every request failed.
    :param extra_batch_fields: other fields of the create body's ``batch`` object, passed as given,
        e.g. ``{"priority": "10"}`` or ``{"webhookConfig": {"uris": [...]}}``.
    :param reattach: submit once per task instance: a later try (a retry, or after a worker crash)
        finds the job an earlier try created and waits on it instead of paying for another. The
        job's display name carries a key derived from dag_id, task_id, run_id and map_index.
    :param resubmit_on_failure: on a later try, submit a new job when the earlier one ended FAILED,
        CANCELLED or EXPIRED (default: report that outcome again without paying twice).
    """

    template_fields: Sequence[str] = (
        "model",
        "requests",
        "input_file",
        "input_path",
        "display_name",
        "extra_batch_fields",
        "gemini_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"requests": "json", "extra_batch_fields": "json"}
    embeddings_default = False

    def __init__(
        self,
        *,
        model: str,
        requests: Any = None,
        input_file: str | None = None,
        input_path: Any = None,
        display_name: str | None = None,
        key_field: str = "key",
        embeddings: bool | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = True,
        cancel_on_timeout: bool = True,
        cancel_on_error: bool = True,
        max_failed_requests: int | None = None,
        max_failed_ratio: float | None = None,
        extra_batch_fields: dict[str, Any] | None = None,
        reattach: bool = True,
        resubmit_on_failure: bool = False,
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
        self.input_path = input_path
        self.display_name = display_name
        self.key_field = key_field
        self.embeddings = self.embeddings_default if embeddings is None else embeddings
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = _seconds(timeout)
        self.cancel_on_kill = cancel_on_kill
        self.exit_actions = ExitActions(cancel_on_timeout=cancel_on_timeout, cancel_on_error=cancel_on_error)
        self.extra_batch_fields = extra_batch_fields
        self.failure_policy = FailurePolicy(max_failed_requests, max_failed_ratio)
        self.reattach = reattach
        self.resubmit_on_failure = resubmit_on_failure
        self._batch_name: str | None = None

    def execute(self, context: Context) -> str:
        batch = self._submit_once(context)
        self._batch_name = batch.name
        context["ti"].xcom_push(key="batch_name", value=batch.name)
        if batch.input_file:  # Uploaded here from input_path or oversized inline requests: cleanup needs it.
            context["ti"].xcom_push(key="input_file", value=batch.input_file)
        if not self.wait_for_completion:
            return batch.name
        deadline = time.time() + self.wait_timeout
        if self.deferrable:
            batch = self.hook.get_batch(batch.name)  # It may already be done: don't defer for nothing.
            if not batch.state.is_terminal:
                self.defer(
                    trigger=GeminiBatchTrigger(
                        batch_name=batch.name,
                        gemini_conn_id=self.gemini_conn_id,
                        poll_interval=self.poll_interval,
                        deadline=deadline,
                        cancel_on_kill=self.cancel_on_kill,
                    ),
                    method_name="execute_complete",
                )
        else:
            batch = wait_until_terminal(self.hook, batch.name, poll_interval=self.poll_interval, deadline=deadline)
            if not batch.state.is_terminal:
                raise timeout_error(
                    batch, self.hook, self.exit_actions.cancel_on_timeout, f"waited {self.wait_timeout:.0f} s"
                )
        raise_for_outcome(batch, self.failure_policy)
        return batch.name

    def _submit_once(self, context: Context) -> Batch:
        """Reattach to the job of an earlier try of this task instance, or create one."""
        if not self.reattach:
            return self._create(self.display_name)
        key = idempotency_key(context)
        scan = getattr(context["ti"], "try_number", 1) > 1
        earlier = find_earlier_job(self.hook, context, key, scan=scan)
        if earlier is not None:
            failed_before = earlier.state.is_terminal and earlier.state is not BatchState.SUCCEEDED
            if not (failed_before and self.resubmit_on_failure):
                self.log.info("Reattaching to %s (%s), created by an earlier try", earlier.name, earlier.progress)
                return earlier
            self.log.warning("%s from an earlier try ended %s: submitting a new job", earlier.name, earlier.progress)
        try:
            batch = self._create(keyed_display_name(self.display_name, key, context))
        except GeminiBatchAmbiguousCreateError as error:
            batch = resolve_ambiguous_create(self.hook, key, error)
        remember(context, batch.name)
        return batch

    def _create(self, display_name: str | None) -> Batch:
        prepared = prepare_input(
            self.hook,
            requests=self.requests,
            input_file=self.input_file,
            input_path=self.input_path,
            display_name=self.display_name,
            key_field=self.key_field,
        )
        create = self.hook.create_embeddings_batch if self.embeddings else self.hook.create_batch
        return create(
            self.model,
            requests=prepared.requests,
            input_file=prepared.input_file,
            display_name=display_name,
            extra_batch_fields=self.extra_batch_fields,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger fired: validate its event and turn it into success or a distinct error."""
        return finish_from_event(event, self.hook, self.failure_policy, self.exit_actions).name

    def on_kill(self) -> None:
        if self._batch_name and self.cancel_on_kill:
            cancel_quietly(self.hook, self._batch_name, "the task was killed")


class GeminiSubmitEmbeddingsBatchOperator(GeminiSubmitBatchOperator):
    """``GeminiSubmitBatchOperator`` for embeddings (``asyncBatchEmbedContent``): requests are
    ``EmbedContentRequest`` bodies such as ``{"content": {"parts": [{"text": "..."}]}, "outputDimensionality": 8}``.
    """

    embeddings_default = True


class GeminiGetBatchOperator(GeminiBatchBaseOperator):
    """Get a batch job and return its summary (state, counts, results file; never results).

    :param batch_name: ``batches/...`` (templated; usually the submit task's XCom).
    """

    template_fields: Sequence[str] = ("batch_name", "gemini_conn_id")

    def __init__(self, *, batch_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_name = batch_name

    def execute(self, context: Context) -> dict[str, Any]:
        batch = self.hook.get_batch(self.batch_name)
        self.log.info("Batch %s: %s", batch.name, batch.progress)
        return batch.summary()


class GeminiCancelBatchOperator(GeminiBatchBaseOperator):
    """Cancel a batch job; optionally wait until it is terminal. A job already finished is left as is.

    :param batch_name: ``batches/...`` (templated).
    :param wait_for_termination: poll until the job reaches a terminal state.
    :param poll_interval: seconds between polls while waiting.
    :param timeout: longest wait in seconds (or timedelta).
    """

    template_fields: Sequence[str] = ("batch_name", "gemini_conn_id")

    def __init__(
        self,
        *,
        batch_name: str,
        wait_for_termination: bool = False,
        poll_interval: float = 10.0,
        timeout: float | timedelta = 600.0,
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
            batch = wait_until_terminal(self.hook, batch.name, poll_interval=self.poll_interval, deadline=deadline)
            if not batch.state.is_terminal:
                raise GeminiBatchError(
                    f"Batch {batch.name} was still {batch.state.short_name} {self.wait_timeout:.0f} s after cancelling."
                )
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
