"""A Python client for the emulator's control API, one method per endpoint."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import httpx

__all__ = ["EmulatorControl", "EmulatorHandle"]

_TIMEOUT_SECONDS = 30.0


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
        """Forget jobs, files, faults and the request log; restore the start-up configuration."""
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

        Examples: ``inject_fault("status", status=429, count=2, retry_delay="1s")``,
        ``inject_fault("status", status=503, method="GET", path_contains="batches/", seconds=30)``,
        ``inject_fault("hold_create", seconds=8)``.

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
