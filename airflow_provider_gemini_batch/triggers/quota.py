"""``GeminiQuotaWaitTrigger``: waits out quota in the triggerer before a refused create is sent again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class GeminiQuotaWaitTrigger(BaseTrigger):
    """Sleep until ``moment``, then emit one event carrying ``state`` back to the submit operator.

    The submit operator defers on it when a create was refused 429 RESOURCE_EXHAUSTED (``quota.py``):
    no job exists, so nothing is polled and nothing can be duplicated; the operator sends the create
    again when it resumes. What the operator needs then (its quota deadline, how many refusals came
    before, the input file it already uploaded) travels in the event, not in the deferral's kwargs,
    so it arrives however the task is resumed. The moment is absolute: a re-created trigger keeps it.

    :param moment: Unix time at which to fire.
    :param state: JSON primitives handed back in the event (``{"status": "quota_wait_over", **state}``).
    """

    def __init__(self, moment: float, state: dict[str, Any] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.moment = float(moment)
        self.state = dict(state or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {"moment": self.moment, "state": self.state})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(max(0.0, self.moment - time.time()))
        yield TriggerEvent({"status": "quota_wait_over", **self.state})  # type: ignore[no-untyped-call]
