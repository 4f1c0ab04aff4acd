"""``GeminiBatchSensor``: wait for an existing batch job by name."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_gemini_batch._completion import ExitActions, FailurePolicy, finish_from_event, raise_for_outcome
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.triggers.gemini_batch import GeminiBatchTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class GeminiBatchSensor(BaseSensorOperator):
    """Wait until a batch job is terminal; return its summary, or raise its outcome's exception.

    Deferrable by default: the wait runs in the triggerer and holds no worker slot. ``mode="poke"``
    or ``"reschedule"`` with ``deferrable=False`` poll from the worker instead (there the sensor's
    own ``timeout`` raises Airflow's sensor timeout, and the job is left as is).

    :param batch_name: ``batches/...`` (templated; usually ``"{{ ti.xcom_pull('submit') }}"``).
    :param gemini_conn_id: the ``gemini`` connection.
    :param deferrable: wait in the triggerer (default True).
    :param poll_interval: seconds between status checks (``poke_interval`` is used when not deferrable).
    :param timeout: the wait's wall-clock deadline (default 48 h).
    :param cancel_on_timeout: cancel the job at the deadline (default False: the sensor did not start it).
    :param cancel_on_kill: cancel the job when the deferred task is killed (Airflow 3.3+; default False).
    :param max_failed_requests: see ``GeminiSubmitBatchOperator``.
    :param max_failed_ratio: see ``GeminiSubmitBatchOperator``.
    """

    template_fields: Sequence[str] = ("batch_name", "gemini_conn_id")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        batch_name: str,
        gemini_conn_id: str = GeminiBatchHook.default_conn_name,
        deferrable: bool = True,
        poll_interval: float = 30.0,
        timeout: float | timedelta = timedelta(hours=48),
        cancel_on_timeout: bool = False,
        cancel_on_kill: bool = False,
        max_failed_requests: int | None = None,
        max_failed_ratio: float | None = None,
        **kwargs: Any,
    ) -> None:
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        super().__init__(timeout=seconds, **kwargs)
        self.batch_name = batch_name
        self.gemini_conn_id = gemini_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.cancel_on_kill = cancel_on_kill
        self.exit_actions = ExitActions(cancel_on_timeout=cancel_on_timeout, cancel_on_error=False)
        self.failure_policy = FailurePolicy(max_failed_requests, max_failed_ratio)

    @cached_property
    def hook(self) -> GeminiBatchHook:
        """The hook, built lazily."""
        return GeminiBatchHook(gemini_conn_id=self.gemini_conn_id)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        batch = self.hook.get_batch(self.batch_name)
        if batch.state.is_terminal:
            raise_for_outcome(batch, self.failure_policy)
            return batch.summary()
        self.defer(
            trigger=GeminiBatchTrigger(
                batch_name=batch.name,
                gemini_conn_id=self.gemini_conn_id,
                poll_interval=self.poll_interval,
                deadline=time.time() + self.timeout,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        batch = self.hook.get_batch(self.batch_name)
        self.log.info("Batch %s: %s", batch.name, batch.progress)
        if not batch.state.is_terminal:
            return False
        raise_for_outcome(batch, self.failure_policy)
        return PokeReturnValue(is_done=True, xcom_value=batch.summary())

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: validate its event and return the summary or raise."""
        return finish_from_event(event, self.hook, self.failure_policy, self.exit_actions).summary()
