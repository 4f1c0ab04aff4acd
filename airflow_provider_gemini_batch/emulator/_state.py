"""Everything one emulator remembers, and how a reset forgets it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from starlette.requests import Request

from airflow_provider_gemini_batch.emulator._caches import CacheStore
from airflow_provider_gemini_batch.emulator._config import EmulatorConfig
from airflow_provider_gemini_batch.emulator._delivery import Courier
from airflow_provider_gemini_batch.emulator._faults import FaultBook
from airflow_provider_gemini_batch.emulator._files import FileStore
from airflow_provider_gemini_batch.emulator._jobs import JobStore
from airflow_provider_gemini_batch.emulator._webhooks import WebhookStore
from airflow_provider_gemini_batch.emulator._wire import timestamp

__all__ = ["EmulatorState", "emulator_state"]

T = TypeVar("T")


class EmulatorState:
    """Files, jobs, webhooks and deliveries, context caches, fault rules, request log and configuration of an emulator.

    Only the server's event loop thread touches it (see ``_results`` for the one exception).

    :param data_dir: where file bytes are kept.
    :param api_key: the key every API request must carry, or ``None`` to accept any request.
    :param config: the start-up configuration, which a reset restores.
    """

    def __init__(self, *, data_dir: Path, api_key: str | None, config: EmulatorConfig) -> None:
        self.api_key = api_key
        self.startup_config = config
        self.config = config
        self.files = FileStore(data_dir)
        self.jobs = JobStore()
        self.faults = FaultBook()
        self.webhooks = WebhookStore()
        self.caches = CacheStore()
        self.courier = Courier(self)
        self.request_log: list[dict[str, Any]] = []
        #: Counts resets, so work started before one (a held create) can tell it should not land after it.
        self.generation = 0
        self._detached: set[asyncio.Task[Any]] = set()

    def reset(self) -> None:
        """Forget jobs, files, webhooks, deliveries, faults and logged requests; restore the start-up configuration.

        Deliveries in flight are cancelled.
        """
        self.generation += 1
        self.config = self.startup_config
        self.courier.reset()
        self.files.reset()
        self.jobs.reset()
        self.webhooks.reset()
        self.caches.reset()
        self.faults.clear()
        self.request_log.clear()

    def log_request(self, method: str, path: str, status: int) -> None:
        """Record an API request: method, path and status only (never headers, query or body)."""
        self.request_log.append({"method": method, "path": path, "status": status, "time": timestamp(time.time_ns())})

    def request_counts(self) -> dict[str, int]:
        """How many API requests each ``METHOD path`` received (e.g. status polls of one job)."""
        counts: dict[str, int] = {}
        for entry in self.request_log:
            key = f"{entry['method']} {entry['path']}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def detach(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` in a task of its own, which finishes even if the request awaiting it is cancelled."""
        task = asyncio.get_running_loop().create_task(work)
        self._detached.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._forget_detached)
        return task

    def _forget_detached(self, task: asyncio.Task[Any]) -> None:
        self._detached.discard(task)
        if not task.cancelled():
            task.exception()  # mark it retrieved: a client that hung up is not there to receive it


def emulator_state(request: Request) -> EmulatorState:
    """Return the state of the emulator serving ``request``."""
    state: EmulatorState = request.app.state.emulator
    return state
