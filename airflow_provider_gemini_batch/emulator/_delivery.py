"""Webhook deliveries: the courier that notices jobs ending and POSTs their events, at least once.

A job's state is computed from the clock (``_jobs``), so nothing tells the emulator that a job has
ended: the courier looks every few hundredths of a second (and at once after a create, a cancel or a
forced state). When a job is first seen in a final state, its event goes to the job's own
``webhookConfig.uris`` if it has any (the SDK's ``WebhookConfig``: "these webhook URIs will be used
instead of the registered webhooks"), else to every enabled webhook subscribed to the event type.

An event is one body and one ``webhook-id`` for every target and every attempt; each attempt has its
own ``webhook-timestamp`` and signature (Standard Webhooks, docs/protocol.md "Webhooks"). A target
answering anything but 2xx, or not answering, is tried again after a pause that doubles up to a cap,
until the give-up window closes. Deliveries run in tasks of their own, so no request waits for them;
a reset or the server's shutdown cancels those in flight.

Faults (``_faults``) shape a delivery when it starts: ``webhook_drop`` sends nothing (a receiver
outage that outlasts the retries), ``webhook_delay`` waits before the first attempt,
``webhook_duplicate`` delivers the event twice, ``webhook_wrong_signature`` signs with a wrong key.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_gemini_batch.emulator._jobs import Job, JobView
from airflow_provider_gemini_batch.emulator._results import settle
from airflow_provider_gemini_batch.emulator._webhooks import BATCH_EVENTS, Webhook, new_signing_secret, sign
from airflow_provider_gemini_batch.emulator._wire import new_resource_id, omit_empty, timestamp

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.emulator._state import EmulatorState

__all__ = ["Courier", "Delivery"]

log = logging.getLogger(__name__)

#: How often the courier looks for jobs that have ended.
_WATCH_INTERVAL_SECONDS = 0.05
_USER_AGENT = "gemini-batch-emulator-webhooks"


@dataclasses.dataclass
class Delivery:
    """One event on its way to one URL: every attempt, and how it ended.

    ``outcome`` is ``pending`` until it is ``delivered`` (a 2xx), ``gave_up`` (the retry window
    closed), ``dropped`` (a ``webhook_drop`` fault: nothing sent) or ``cancelled`` (a reset or
    shutdown). ``copies`` is 2 under a ``webhook_duplicate`` fault.
    """

    webhook_id: str
    type: str
    batch: str | None
    url: str
    webhook: str | None
    body: bytes
    secrets: Callable[[], list[str]]
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    outcome: str = "pending"
    copies: int = 1

    def as_json(self) -> dict[str, Any]:
        """The delivery as the control API lists it (the payload, never a secret or a header)."""
        return {
            "webhook_id": self.webhook_id,
            "type": self.type,
            "batch": self.batch,
            "url": self.url,
            "webhook": self.webhook,
            "payload": json.loads(self.body),
            "attempts": list(self.attempts),
            "outcome": self.outcome,
            "copies": self.copies,
        }


class Courier:
    """Watches jobs end and delivers their events; started and stopped with the app's lifespan.

    :param state: the emulator whose jobs, webhooks, configuration and faults apply.
    """

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._deliveries: list[Delivery] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    async def start(self) -> None:
        """Open the HTTP client and start watching jobs."""
        self._client = httpx.AsyncClient(trust_env=False, headers={"user-agent": _USER_AGENT})
        self._wake = asyncio.Event()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        """Stop watching, cancel deliveries in flight, close the HTTP client."""
        tasks = [*self._tasks, *([self._watcher] if self._watcher else [])]
        self._cancel_deliveries()
        if self._watcher is not None:
            self._watcher.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watcher = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def reset(self) -> None:
        """Cancel deliveries in flight and forget every delivery."""
        self._cancel_deliveries()
        self._deliveries.clear()

    def wake(self) -> None:
        """Look for ended jobs now (after a create, a cancel or a forced state)."""
        if self._wake is not None:
            self._wake.set()

    def as_json(self) -> list[dict[str, Any]]:
        """Every delivery since the last reset, in the order they were started."""
        return [delivery.as_json() for delivery in self._deliveries]

    def ping(self, webhook: Webhook) -> None:
        """Deliver a ping event to ``webhook`` (its shape is the emulator's choice, see the docs)."""
        event = {"type": "ping", "version": "v1", "timestamp": timestamp(time.time_ns()), "data": {}}
        self._send(_message_id(), event, batch=None, url=webhook.uri, webhook=webhook)

    async def _watch(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            self._look()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _WATCH_INTERVAL_SECONDS)

    def _look(self) -> None:
        now = time.time_ns()
        jobs = self._state.jobs
        for job in jobs.unannounced():
            view = job.view(now)
            if job.deleted:
                jobs.mark_announced(job)
            elif view.terminal:
                jobs.mark_announced(job)
                self._spawn(self._announce(job, view))

    async def _announce(self, job: Job, view: JobView) -> None:
        """Settle the job's results, then send its event to each target."""
        generation = self._state.generation
        await settle(job, self._state.files, view.state, self._state.caches)
        if generation != self._state.generation:
            return
        event_type = BATCH_EVENTS[view.state]
        event = {"type": event_type, "version": "v1", "timestamp": timestamp(time.time_ns()), "data": _data(job, view)}
        message_id = _message_id()
        targets: list[tuple[str, Webhook | None]] = [(uri, None) for uri in job.webhook_uris or []]
        if not targets:
            webhooks = self._state.webhooks.oldest_first()
            targets = [(webhook.uri, webhook) for webhook in webhooks if webhook.receives(event_type)]
        for url, webhook in targets:
            self._send(message_id, event, batch=job.name, url=url, webhook=webhook)
        if targets:
            log.info("%s ended %s: %s to %d webhook(s)", job.name, view.state, event_type, len(targets))

    def _send(
        self, message_id: str, event: dict[str, Any], *, batch: str | None, url: str, webhook: Webhook | None
    ) -> None:
        state = self._state

        def job_secret() -> list[str]:
            return [state.config.job_webhook_secret]

        secrets = job_secret if webhook is None else webhook.valid_secrets
        body = json.dumps(event, separators=(",", ":")).encode()
        delivery = Delivery(
            message_id,
            str(event["type"]),
            batch,
            url,
            webhook.webhook_id if webhook else None,
            body,
            secrets,
        )
        self._deliveries.append(delivery)
        self._spawn(self._deliver(delivery))

    async def _deliver(self, delivery: Delivery) -> None:
        """Send one delivery, with its faults, retrying until a 2xx or the end of the window."""
        faults = self._state.faults
        try:
            if faults.take("webhook_drop", "POST", delivery.url) is not None:
                delivery.outcome = "dropped"
                return
            delay = faults.take("webhook_delay", "POST", delivery.url)
            if faults.take("webhook_duplicate", "POST", delivery.url) is not None:
                delivery.copies = 2
            if faults.take("webhook_wrong_signature", "POST", delivery.url) is not None:
                wrong = [new_signing_secret()]
                delivery.secrets = wrong.copy
            if delay is not None:
                await asyncio.sleep(delay.seconds)
            for _ in range(delivery.copies):
                if not await self._until_accepted(delivery):
                    delivery.outcome = "gave_up"
                    log.warning("Gave up delivering %s for %s", delivery.type, delivery.batch)
                    return
            delivery.outcome = "delivered"
        except asyncio.CancelledError:
            delivery.outcome = "cancelled"
            raise

    async def _until_accepted(self, delivery: Delivery) -> bool:
        config = self._state.config
        deadline = time.monotonic() + config.webhook_retry_seconds
        pause = config.webhook_first_retry_seconds
        while True:
            if await self._attempt(delivery, config.webhook_attempt_timeout_seconds):
                return True
            if time.monotonic() + pause > deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, config.webhook_max_retry_seconds)

    async def _attempt(self, delivery: Delivery, timeout: float) -> bool:
        assert self._client is not None
        unix_seconds = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(unix_seconds),
            "webhook-signature": sign(delivery.secrets(), delivery.webhook_id, unix_seconds, delivery.body),
        }
        attempt: dict[str, Any] = {"time": timestamp(time.time_ns()), "status": None, "error": None}
        delivery.attempts.append(attempt)
        try:
            response = await self._client.post(delivery.url, content=delivery.body, headers=headers, timeout=timeout)
        except httpx.HTTPError as error:
            attempt["error"] = type(error).__name__
            return False
        attempt["status"] = response.status_code
        return response.is_success

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("A webhook delivery failed inside the emulator", exc_info=task.exception())

    def _cancel_deliveries(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _message_id() -> str:
    """A fresh ``webhook-id``, as Standard Webhooks senders write them (``msg_...``)."""
    return "msg_" + new_resource_id(27)


def _data(job: Job, view: JobView) -> dict[str, Any]:
    """The event's ``data``: the job, its results file or its error, and the job's user metadata."""
    error = view.error() or {}
    results_field = job.config.webhook_results_field
    return omit_empty(
        {
            "id": job.name,
            results_field: job.results_file_name if view.state == "SUCCEEDED" else None,
            "error_code": error.get("code"),
            "error_message": error.get("message"),
            "user_metadata": job.webhook_metadata,
        }
    )
