"""The sync and async HTTP clients: they differ only in how they send an ``ApiCall``.

Both share ``ClientSettings`` (where to send, how long to wait, how often to retry; the hook reads
them from an Airflow connection in ``_base.py``), the ``ApiKeyAuth`` flow, the request building of
``_endpoints``, the error mapping of ``_errors`` and the retry policy of ``_retry``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import httpx

from airflow_provider_gemini_batch import __version__
from airflow_provider_gemini_batch.exceptions import GeminiBatchServerError
from airflow_provider_gemini_batch.hooks._endpoints import ApiCall
from airflow_provider_gemini_batch.hooks._errors import connection_error, error_from_response
from airflow_provider_gemini_batch.hooks._retry import RetryPolicy
from airflow_provider_gemini_batch.settings import (
    DEFAULT_API_VERSION,
    DEFAULT_REQUEST_TIMEOUT,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_AGENT = f"airflow-provider-gemini-batch/{__version__}"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    """Return the scheme, host and port of ``url``, the scheme's default port written out."""
    url = httpx.URL(url)
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def origin_text(url: httpx.URL | str) -> str:
    """Return ``scheme://host:port`` of ``url``: safe for messages (no path, query or user info)."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}" + (f":{port}" if port else "")


class ApiKeyAuth(httpx.Auth):
    """Send the API key in the ``x-goog-api-key`` header, and only to the base URL's origin.

    Never in the URL, where it ends up in logs; never to another scheme, host or port, whatever URL
    a reply points at. Upload-session URLs carry their own credential (``upload_id``), so they get
    no key either (``docs/protocol.md``, "Versions and auth").

    :param origin_url: a URL on the only origin that may receive the key: the connection's base URL.
    """

    def __init__(self, api_key: str, origin_url: str) -> None:
        self._api_key = api_key
        self._origin = origin(origin_url)

    def __repr__(self) -> str:
        return "ApiKeyAuth(api_key=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin(request.url) == self._origin and "upload_id" not in request.url.params:
            request.headers["x-goog-api-key"] = self._api_key
        yield request


@dataclass(frozen=True)
class ClientSettings:
    """Where requests go and how patiently: built from an Airflow connection by the hook.

    :param base_url: scheme and host, e.g. ``https://generativelanguage.googleapis.com`` or the emulator's.
    :param api_version: ``v1beta`` (default) or ``v1``.
    :param timeout: seconds for one attempt of a JSON call, from connect to the reply's last byte; a
        streamed download or upload chunk instead gives up when no byte moves for this long.
    """

    base_url: str
    api_key: str = field(repr=False)
    api_version: str = DEFAULT_API_VERSION
    timeout: float = DEFAULT_REQUEST_TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def api_url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{self.api_version}/{path}"

    @property
    def upload_start_url(self) -> str:
        return f"{self.base_url}/upload/{self.api_version}/files"

    def download_url(self, file_name: str) -> str:
        return f"{self.base_url}/download/{self.api_version}/{file_name}:download"

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "auth": ApiKeyAuth(self.api_key, self.base_url),
            "timeout": httpx.Timeout(self.timeout, connect=min(self.timeout, 15.0)),
            "headers": {"user-agent": USER_AGENT},
            "verify": shared_ssl_context(),
        }


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every client in the process.

    httpx builds a context per client by default, loading the CA bundle each time: about 830 KiB
    and 20 ms of CPU, which a triggerer pays once per waiting batch.
    """
    return httpx.create_ssl_context()


def parse_reply(response: httpx.Response, parse: Callable[[httpx.Response], T], description: str) -> T:
    """Apply ``parse``; an unreadable body (a proxy's HTML page, a truncated JSON) raises a server error."""
    try:
        return parse(response)
    except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError.
        raise GeminiBatchServerError(
            response.status_code,
            None,
            f"{description}: the reply could not be read ({type(exc).__name__})",
            hint="A proxy or the service answered with an unexpected body: retry later, and check the host.",
        ) from exc


class _Attempts(Generic[T]):
    """One call's request arguments and retry bookkeeping, shared by the sync and async loops."""

    def __init__(self, settings: ClientSettings, call: ApiCall[T]) -> None:
        self.settings = settings
        self.call = call
        self.attempt = 0
        self.request: dict[str, Any] = {
            "method": call.method,
            "url": settings.api_url(call.path),
            "params": call.params or None,  # An empty dict would drop the URL's own query (upload_id).
            "json": call.json,
            "headers": call.headers,
        }

    def parse(self, response: httpx.Response) -> T:
        """Read a success reply; a body that isn't the expected shape is a server error, not a crash."""
        return parse_reply(response, self.call.parse, self.call.description)

    def after_error(self, exc: httpx.TransportError) -> float:
        """Seconds to wait before the next attempt, or raise."""
        return self._next(self.settings.retry.on_transport_error(exc, self.attempt, self.call))

    def after_reply(self, response: httpx.Response) -> float:
        """Seconds to wait before the next attempt after an error reply, or raise."""
        error = error_from_response(response, self.call.description)
        return self._next(self.settings.retry.on_status(error, self.attempt, self.call))

    def _next(self, delay: float) -> float:
        log.warning(
            "Retrying %s in %.1f s (retry %d of %d)",
            self.call.description,
            delay,
            self.attempt + 1,
            self.settings.retry.max_retries,
        )
        self.attempt += 1
        return delay


class _AttemptDeadline:
    """The end of one attempt of a JSON call: a reply trickling a byte at a time defeats per-read timeouts."""

    def __init__(self, seconds: float, request: httpx.Request) -> None:
        self.seconds = seconds
        self.request = request
        self.end = time.monotonic() + seconds

    def expired(self) -> httpx.ReadTimeout:
        """Return the error of an attempt past its end: a timeout, retried (or ambiguous for a create) as any."""
        return httpx.ReadTimeout(f"no complete reply within {self.seconds:g} s", request=self.request)


class _BoundedBody(httpx.SyncByteStream):
    """A reply body that fails when a chunk arrives after the attempt's deadline."""

    def __init__(self, body: httpx.SyncByteStream, deadline: _AttemptDeadline) -> None:
        self.body = body
        self.deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            if time.monotonic() > self.deadline.end:
                raise self.deadline.expired()
            yield chunk

    def close(self) -> None:
        self.body.close()


class SyncClient:
    """Sends ``ApiCall``s with ``httpx.Client``, retrying as the policy says, and streams downloads."""

    def __init__(self, settings: ClientSettings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.http = httpx.Client(transport=transport, **settings.client_kwargs())
        # Operators drop their hook without closing it; close the pool when this client is collected
        # so no socket is left for the garbage collector to complain about.
        weakref.finalize(self, self.http.close)

    def close(self) -> None:
        self.http.close()

    def call(self, call: ApiCall[T]) -> T:
        """Send ``call`` and parse its reply, retrying transient failures."""
        attempts = _Attempts(self.settings, call)
        while True:
            try:
                response = self._attempt(attempts)
            except httpx.TransportError as exc:
                delay = attempts.after_error(exc)
            else:
                if response.is_success:
                    return attempts.parse(response)
                delay = attempts.after_reply(response)
            time.sleep(delay)

    def _attempt(self, attempts: _Attempts[Any]) -> httpx.Response:
        """Send one attempt and read its reply, giving up at the attempt's deadline.

        A sync read cannot be interrupted, so the deadline is checked as each chunk of the reply
        arrives; no single read waits longer than ``timeout`` either.
        """
        request = self.http.build_request(**attempts.request)
        deadline = _AttemptDeadline(self.settings.timeout, request)
        response = self.http.send(request, stream=True)
        try:
            if isinstance(response.stream, httpx.SyncByteStream):
                response.stream = _BoundedBody(response.stream, deadline)
            response.read()
        finally:
            response.close()
        return response

    def iter_file_bytes(self, file_name: str) -> Iterator[bytes]:
        """Stream a file's bytes; after a dropped connection, resume where it broke off.

        Resumes with a ``Range`` request; a server that ignores ranges (200 instead of 206) is read
        from the start again, skipping what was already delivered, so no byte comes twice.
        """
        offset = 0
        failures = 0
        description = f"download {file_name}"
        while True:
            # Identity encoding keeps byte offsets meaningful for Range requests.
            headers = {"accept-encoding": "identity", **({"range": f"bytes={offset}-"} if offset else {})}
            try:
                with self.http.stream(
                    "GET", self.settings.download_url(file_name), params={"alt": "media"}, headers=headers
                ) as response:
                    if not response.is_success:
                        response.read()
                        error = error_from_response(response, description)
                        delay = self.settings.retry.on_status(error, failures, ApiCall("GET", "", _none, description))
                    else:
                        skip = offset if response.status_code != 206 else 0
                        for chunk in response.iter_bytes():
                            if skip:
                                chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                            if chunk:
                                offset += len(chunk)
                                failures = 0
                                yield chunk
                        return
            except httpx.TransportError as exc:
                if failures >= self.settings.retry.max_retries:
                    raise connection_error(description, exc, failures) from exc
                delay = self.settings.retry.backoff(failures)
                log.warning("Download of %s broke off at byte %d; resuming in %.1f s", file_name, offset, delay)
            time.sleep(delay)
            failures += 1


def _none(response: httpx.Response) -> None:
    return None


class AsyncClient:
    """The async twin of ``SyncClient`` for triggers: every wait is awaited, nothing blocks the loop.

    :param gate: entered around each HTTP attempt (not around the waits between retries), e.g. a
        semaphore that many clients share to cap the requests in flight.
    """

    def __init__(
        self,
        settings: ClientSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        gate: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(transport=transport, **settings.client_kwargs())
        self.gate = gate if gate is not None else contextlib.nullcontext()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, call: ApiCall[T]) -> T:
        """Send ``call`` and parse its reply, retrying transient failures."""
        attempts = _Attempts(self.settings, call)
        while True:
            try:
                async with self.gate:
                    response = await self._attempt(attempts)
            except httpx.TransportError as exc:
                delay = attempts.after_error(exc)
            else:
                if response.is_success:
                    return attempts.parse(response)
                delay = attempts.after_reply(response)
            await asyncio.sleep(delay)

    async def _attempt(self, attempts: _Attempts[Any]) -> httpx.Response:
        """Send one attempt and read its reply, cancelled at the attempt's deadline wherever it is."""
        request = self.http.build_request(**attempts.request)
        deadline = _AttemptDeadline(self.settings.timeout, request)
        try:
            with anyio.fail_after(self.settings.timeout):
                return await self.http.send(request)
        except TimeoutError as exc:
            raise deadline.expired() from exc


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """Await ``awaitable`` for at most ``seconds``, else cancel it and raise ``TimeoutError``.

    Not ``asyncio.wait_for``: on Python 3.10 and 3.11 it can swallow a cancellation that arrives as
    the inner call finishes, and a trigger that ignores the triggerer's cancel polls forever.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise TimeoutError
    return task.result()
