"""Drive an operator through Airflow's own execute → defer → trigger → execute_complete sequence.

``dag.test()`` runs the same sequence but swallows the task's exception; these helpers let a test
assert the exception class a DAG author would catch, while the trigger still runs for real
against the emulator.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator, TaskDeferred


class RecordingTaskInstance:
    """The part of a task instance these operators use: its identity and ``xcom_push``."""

    def __init__(self, try_number: int = 1, run_id: str = "manual__test") -> None:
        self.dag_id = "test_dag"
        self.task_id = "submit"
        self.run_id = run_id
        self.map_index = -1
        self.try_number = try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class TaskStateStore:
    """Airflow 3.3's ``context["task_state_store"]``: a per-task-instance store that survives retries."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


async def first_event(deferred: TaskDeferred) -> dict[str, Any]:
    """Run the deferred trigger until its one event, as the triggerer would."""
    async for event in deferred.trigger.run():
        payload: dict[str, Any] = event.payload
        return payload
    raise AssertionError("the trigger ended without an event")


def run_task(operator: BaseOperator, context: dict[str, Any] | None = None) -> tuple[Any, bool]:
    """Execute ``operator``; when it defers, run its trigger and resume it. Return (result, deferred)."""
    context = context if context is not None else {"ti": RecordingTaskInstance()}
    try:
        return operator.execute(context), False
    except TaskDeferred as deferred:
        event = asyncio.run(first_event(deferred))
        method = getattr(operator, deferred.method_name)
        return method(context, event=event), True


def requests(count: int, failing: int = 0) -> list[dict[str, Any]]:
    """``count`` generateContent requests keyed ``k0``...; the first ``failing`` fail alone in the emulator."""
    return [
        {
            "key": f"k{i}",
            "request": {"contents": [{"parts": [{"text": f"q{i}" + (" [[fail]]" if i < failing else "")}]}]},
        }
        for i in range(count)
    ]
