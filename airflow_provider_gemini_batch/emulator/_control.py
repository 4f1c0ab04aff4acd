"""A Python client for the emulator's control API, one method per endpoint."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import httpx

__all__ = ["EmulatorControl", "EmulatorHandle"]

_TIMEOUT_SECONDS = 30.0
_POLL_SECONDS = 0.02


class EmulatorControl:
    """Steer and inspect a running emulator (sync, over HTTP; no API key needed).

    The HTTP client is created on the first call and reused; :meth:`close` it (or use the instance
    as a context manager) when done. Errors from the control API raise :class:`httpx.HTTPStatusError`.

    :param base_url: the emulator's base URL, e.g. ``http://127.0.0.1:8765``.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    @functools.cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=_TIMEOUT_SECONDS)

    def close(self) -> None:
        """Close the HTTP client, if one was opened."""
        if "_client" in self.__dict__:
            self._client.close()
            del self._client

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def reset(self) -> None:
        """Forget jobs, files, webhooks, deliveries, faults and the request log; restore the start-up configuration.

        Webhook deliveries in flight are cancelled.
        """
        self._call("POST", "/_emulator/reset")

    def config(self) -> dict[str, Any]:
        """Return the current configuration."""
        result: dict[str, Any] = self._call("GET", "/_emulator/config")
        return result

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Merge settings into the configuration; return the whole configuration.

        Keys: ``pending_seconds``, ``running_seconds``, ``outcome`` (SUCCEEDED, FAILED, CANCELLED,
        EXPIRED), ``outcome_message``, ``chunk_granularity``, ``discard_uploads`` (benchmarks: keep no
        uploaded bytes), ``generation_models`` and ``embedding_models`` (the models creates may name,
        e.g. ``["gemini-2.5-flash", "tunedModels/mine"]``; each list replaces the current one). They
        apply to jobs and uploads started afterwards.

        Webhook deliveries: ``job_webhook_secret`` (the ``whsec_`` secret signing deliveries to a
        job's own ``webhookConfig.uris``), ``webhook_first_retry_seconds`` (pause after a failed
        attempt, doubling), ``webhook_max_retry_seconds`` (its cap), ``webhook_retry_seconds`` (give
        up that long after the first attempt), ``webhook_attempt_timeout_seconds`` and
        ``webhook_results_field`` (``output_file_uri`` or ``file_name``: the ``data`` field naming a
        succeeded file job's results file; it applies to jobs created afterwards).

        Quota at create: ``max_concurrent_jobs`` (PENDING or RUNNING jobs at once) and
        ``max_enqueued_tokens`` (estimated input tokens of one model's active jobs, a quarter of each
        request's bytes); a create over either is 429 RESOURCE_EXHAUSTED carrying a ``RetryInfo`` of
        ``quota_retry_seconds``. ``None`` turns a limit off (the default).
        """
        result: dict[str, Any] = self._call("POST", "/_emulator/config", settings)
        return result

    def set_state(self, batch_name: str, state: str, message: str | None = None) -> None:
        """Force a job into ``state`` now (``FAILED``, ``RUNNING``, ``BATCH_STATE_SUCCEEDED``, ...).

        A forced PENDING or RUNNING holds until another state is forced or the job is cancelled. An
        unknown name (``BATCH_STATE_PAUSED``) is shown as is, as a non-terminal state.
        ``message`` becomes the job's ``error.message`` for FAILED, CANCELLED and EXPIRED.
        """
        batch_id = batch_name.removeprefix("batches/")
        self._call("POST", f"/_emulator/batches/{batch_id}:set_state", {"state": state, "message": message})

    def batches(self) -> list[dict[str, Any]]:
        """Every job created since the last reset, deleted ones included, oldest first.

        Items: ``name``, ``state`` (``BATCH_STATE_*``), ``displayName``, ``model``, ``deleted``.
        """
        batches: list[dict[str, Any]] = self._call("GET", "/_emulator/batches")["batches"]
        return batches

    def created_count(self) -> int:
        """How many jobs were created since the last reset (to assert "exactly one job")."""
        count: int = self._call("GET", "/_emulator/batches")["createdCount"]
        return count

    def requests(self) -> list[dict[str, Any]]:
        """The API request log: ``method``, ``path``, ``status`` (0 = dropped) and ``time``."""
        log: list[dict[str, Any]] = self._call("GET", "/_emulator/requests")
        return log

    def request_counts(self) -> dict[str, int]:
        """How many API requests each ``"METHOD path"`` received since the last reset.

        E.g. ``counts.get("GET /v1beta/batches/abc", 0)`` is how often that job was polled.
        """
        counts: dict[str, int] = self._call("GET", "/_emulator/request_counts")
        return counts

    def job_webhook_secret(self) -> str:
        """The ``whsec_`` secret signing deliveries to jobs' own ``webhookConfig.uris``.

        Set another with ``configure(job_webhook_secret="whsec_...")``; a reset restores the start-up one.
        """
        secret: str = self.config()["job_webhook_secret"]
        return secret

    def deliveries(self, batch_name: str | None = None) -> list[dict[str, Any]]:
        """Webhook deliveries since the last reset (of one job's events if ``batch_name`` is given).

        Items: ``webhook_id`` (the ``webhook-id`` header, the same on every attempt and copy),
        ``type`` (``batch.succeeded``, ..., ``ping``), ``batch`` (``batches/...`` or ``None`` for a
        ping), ``url``, ``webhook`` (the registered webhook's id, ``None`` for a job's own URI),
        ``payload`` (the JSON body sent), ``attempts`` (each ``time``, ``status`` or ``None``,
        ``error`` or ``None``), ``outcome`` (``pending``, ``delivered``, ``gave_up``, ``dropped``,
        ``cancelled``) and ``copies`` (2 under a ``webhook_duplicate`` fault).
        """
        deliveries: list[dict[str, Any]] = self._call("GET", "/_emulator/webhook_deliveries")["deliveries"]
        if batch_name is not None:
            batch = "batches/" + batch_name.removeprefix("batches/")
            deliveries = [delivery for delivery in deliveries if delivery["batch"] == batch]
        return deliveries

    def wait_for_deliveries(
        self, count: int = 1, *, batch_name: str | None = None, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` deliveries (of ``batch_name``'s events) have ended; return them all.

        Ended means any outcome but ``pending``.

        :raises TimeoutError: if they have not after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self.deliveries(batch_name)
            if sum(delivery["outcome"] != "pending" for delivery in deliveries) >= count:
                return deliveries
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} webhook deliveries did not end within {timeout} s: {deliveries}")
            time.sleep(_POLL_SECONDS)

    def file_sha256(self, file_name: str) -> str:
        """The SHA-256 (hex) of a stored file's bytes (``files/{id}`` or ``{id}``)."""
        file_id = file_name.removeprefix("files/")
        digest: str = self._call("GET", f"/_emulator/files/{file_id}:sha256")["sha256"]
        return digest

    def inject_fault(self, kind: str, **params: Any) -> None:
        """Add a fault rule; the ``_faults`` module describes each kind in full.

        Every kind takes ``count`` (default 1), ``method`` and ``path_contains`` to choose the
        requests it hits. Kinds and their parameters:

        - ``status``: ``status``, ``message``, ``retry_delay``, ``retry_after``; with ``seconds`` an
          outage that refuses every matching request for that long (instead of ``count`` times).
        - ``drop_upload`` / ``drop_download``: ``after_bytes``, then the connection drops.
        - ``drop_after_create``: the job is made, then the connection drops.
        - ``hold_create``: ``seconds`` before the job is made and answered, even if the client left.
        - ``truncate_reply``: ``after_bytes`` of the body, with a matching ``Content-Length``.
        - ``trickle``: ``seconds`` between two body bytes.
        - ``end_download_early``: ``after_lines`` complete lines, chunked, then a clean end.
        - ``upload_url``: ``url``, the ``X-Goog-Upload-URL`` an upload start answers with.

        Webhook deliveries (``path_contains`` matches the delivery URL; ``count`` counts deliveries):

        - ``webhook_drop``: send nothing (a receiver outage); with ``seconds``, every delivery
          starting within that long.
        - ``webhook_delay``: ``seconds`` before the first attempt.
        - ``webhook_duplicate``: deliver the event twice, with the same ``webhook-id``.
        - ``webhook_wrong_signature``: sign with a wrong key.

        Examples: ``inject_fault("status", status=429, count=2, retry_delay="1s")``,
        ``inject_fault("status", status=503, method="GET", path_contains="batches/", seconds=30)``,
        ``inject_fault("hold_create", seconds=8)``, ``inject_fault("webhook_drop", seconds=60)``.

        :raises httpx.HTTPStatusError: 400, with a message saying what to fix, on a bad rule.
        """
        self._call("POST", "/_emulator/faults", {"kind": kind, **params})

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "/_emulator/faults")

    def discard(self, content: bytes) -> int:
        """Send bytes the emulator throws away; return how many arrived (a benchmark ceiling)."""
        received: int = self._call("POST", "/_emulator/discard", content=content)["bytes"]
        return received

    def _call(self, method: str, path: str, payload: Any = None, *, content: bytes | None = None) -> Any:
        response = self._client.request(method, path, json=payload, content=content)
        response.raise_for_status()
        return response.json()


@dataclasses.dataclass(frozen=True)
class EmulatorHandle:
    """A running emulator as tests see it.

    :param base_url: where it listens, e.g. ``http://127.0.0.1:8765`` (use as the connection host).
    :param api_key: the key it expects (use as the connection password).
    :param control: its control API client.
    """

    base_url: str
    api_key: str | None
    control: EmulatorControl

    @property
    def job_webhook_secret(self) -> str:
        """The secret signing deliveries to jobs' own webhook URIs (asked of the emulator each time)."""
        return self.control.job_webhook_secret()
