"""``GeminiBatchSensor``: wait for an existing batch job by name."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.links import GeminiBatchLink
from airflow_provider_gemini_batch.outcome import ExitActions, FailurePolicy, settle, wants_error_sample
from airflow_provider_gemini_batch.settings import DEFAULT_OUTAGE_LIMIT, DEFAULT_POLL_INTERVAL, DEFAULT_WAIT_TIMEOUT
from airflow_provider_gemini_batch.triggers.gemini_batch import GeminiBatchTrigger
from airflow_provider_gemini_batch.watch import BatchWatch, Finish, WaitOutcome

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class GeminiBatchSensor(BaseSensorOperator):
    """Wait until a batch job is terminal; return its summary, or raise its outcome's exception.

    Deferrable by default: the wait runs in the triggerer and holds no worker slot. With
    ``deferrable=False`` it polls from the worker: ``mode="poke"`` runs the same wait as the trigger
    (same outcomes, messages and exceptions); ``mode="reschedule"`` polls once per reschedule, and
    there a failed poll just counts as "not yet" until the sensor's ``timeout``.

    When ``timeout`` passes, the sensor raises ``GeminiBatchTimeout`` (in reschedule mode: Airflow's
    own sensor timeout) and leaves the job running unless ``cancel_on_timeout=True`` (the sensor did
    not start the job; reschedule mode never cancels).

    :param batch_name: ``batches/...`` (templated; usually ``"{{ ti.xcom_pull('submit') }}"``).
    :param gemini_conn_id: the ``gemini`` connection.
    :param deferrable: wait in the triggerer (default True).
    :param poke_interval: seconds between status checks in every mode, deferred or not (default 30).
    :param timeout: the wait's wall-clock deadline (default 48 h).
    :param outage_limit: how long to ride out an unreachable service (default 1 h; not in reschedule mode).
    :param cancel_on_timeout: cancel the job at the deadline (default False: the sensor did not start it).
    :param cancel_on_kill: cancel the job when the deferred task is marked failed (Airflow 3.3+; default False).
    :param max_failed_requests: see ``GeminiSubmitBatchOperator``.
    :param max_failed_ratio: see ``GeminiSubmitBatchOperator``.
    """

    operator_extra_links = (GeminiBatchLink(),)
    template_fields: Sequence[str] = ("batch_name", "gemini_conn_id")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        batch_name: str,
        gemini_conn_id: str = GeminiBatchHook.default_conn_name,
        deferrable: bool = True,
        timeout: float | timedelta = DEFAULT_WAIT_TIMEOUT,
        outage_limit: float | timedelta = DEFAULT_OUTAGE_LIMIT,
        cancel_on_timeout: bool = False,
        cancel_on_kill: bool = False,
        max_failed_requests: int | None = None,
        max_failed_ratio: float | None = None,
        **kwargs: Any,
    ) -> None:
        if "poll_interval" in kwargs:
            raise TypeError(
                "GeminiBatchSensor takes poke_interval (Airflow's sensor interval, used in every mode), "
                "not poll_interval: rename the argument."
            )
        kwargs.setdefault("poke_interval", DEFAULT_POLL_INTERVAL)
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        super().__init__(timeout=seconds, **kwargs)
        self.batch_name = batch_name
        self.gemini_conn_id = gemini_conn_id
        self.deferrable = deferrable
        self.outage_limit = outage_limit.total_seconds() if isinstance(outage_limit, timedelta) else outage_limit
        self.cancel_on_kill = cancel_on_kill
        self.exit_actions = ExitActions(cancel_on_timeout=cancel_on_timeout, cancel_on_error=False)
        self.failure_policy = FailurePolicy(max_failed_requests, max_failed_ratio)

    @cached_property
    def hook(self) -> GeminiBatchHook:
        """The hook, built lazily."""
        return GeminiBatchHook(gemini_conn_id=self.gemini_conn_id)

    def execute(self, context: Context) -> Any:
        if not self.deferrable and self.mode == "reschedule":
            return super().execute(context)
        deadline = time.time() + self.timeout
        if not self.deferrable:
            outcome = self.hook.wait_for_batch(
                self.batch_name,
                deadline=deadline,
                poll_interval=float(self.poke_interval),
                outage_limit=self.outage_limit,
            )
            return self._finish(outcome)
        finished = self.hook.finished_outcome(self.batch_name)  # Don't defer for a job already done.
        if finished is not None:
            return self._finish(finished)
        self.defer(
            trigger=GeminiBatchTrigger(
                batch_name=self.batch_name,
                gemini_conn_id=self.gemini_conn_id,
                poll_interval=float(self.poke_interval),
                deadline=deadline,
                outage_limit=self.outage_limit,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """One poll (reschedule mode): the watch's decision on it, with Airflow's timeout as the deadline."""
        watch = BatchWatch(self.batch_name, float(self.poke_interval), deadline=float("inf"), outage_limit=float("inf"))
        decision = self.hook.poll_once(watch)
        if not isinstance(decision, Finish):
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(decision.outcome))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: validate its event and return the summary or raise."""
        return self._finish(WaitOutcome.from_event(event))

    def _finish(self, outcome: WaitOutcome) -> dict[str, Any]:
        sample = self.hook.sample_errors(outcome.batch) if wants_error_sample(outcome, self.failure_policy) else []
        return settle(outcome, self.failure_policy, self.exit_actions, self.hook.cancel_quietly, sample).summary()
