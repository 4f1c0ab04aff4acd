"""The connection side of the hook: settings read from an Airflow connection, and the HTTP clients.

As in Airflow's Databricks provider (``BaseDatabricksHook``), connection handling sits in a base
class so that the hook module is the catalogue of what the service offers.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_provider_gemini_batch.exceptions import GeminiBatchConfigError, GeminiBatchError
from airflow_provider_gemini_batch.hooks import _endpoints
from airflow_provider_gemini_batch.hooks._client import AsyncClient, ClientSettings, SyncClient
from airflow_provider_gemini_batch.hooks._retry import RetryPolicy
from airflow_provider_gemini_batch.settings import (
    CONNECTION_FORM,
    DEFAULT_API_VERSION,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RETRY_BASE_DELAY,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection

H = TypeVar("H", bound="GeminiBaseHook")


class GeminiBaseHook(BaseHook):
    """The connection side of ``GeminiBatchHook``: settings read lazily, one sync and one async client.

    The API's resources are ``GeminiBatchHook``'s methods; this class holds what every call needs.
    Parameters as ``GeminiBatchHook``'s.
    """

    conn_name_attr = "gemini_conn_id"
    default_conn_name = "gemini_default"
    conn_type = "gemini"
    hook_name = "Gemini Batch"

    def __init__(
        self,
        gemini_conn_id: str = default_conn_name,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        async_gate: AbstractAsyncContextManager[Any] | None = None,
        retry_base_delay: float = DEFAULT_RETRY_BASE_DELAY,
    ) -> None:
        super().__init__()
        self.gemini_conn_id = gemini_conn_id
        self._transport = transport
        self._async_transport = async_transport
        self._async_gate = async_gate
        self._retry_base_delay = retry_base_delay
        # The async side is built inside the running event loop, so not as cached properties.
        self._async_settings: ClientSettings | None = None
        self._async_client: AsyncClient | None = None
        self._given_settings: ClientSettings | None = None

    @classmethod
    def for_api_key(cls: type[H], api_key: str | None, base_url: str | None = None, *, source: str, **kwargs: Any) -> H:
        """A hook that reads no connection: ``api_key`` and ``base_url`` as a ``gemini`` connection's password and host.

        For callers handed credentials instead of a connection id (Airflow's common AI provider builds
        its batch adapters from a connection's password and host alone); the extras take their defaults.
        Nothing is sent until the first call.

        :param source: where the credentials came from, for error messages: ``"connection 'x'"``.
        :param kwargs: as the constructor's (``transport``, ...).
        :raises GeminiBatchConfigError: no key, or a base URL that is not an http(s) URL.
        """
        hook = cls(**kwargs)
        hook._given_settings = settings_from_fields(
            source, password=api_key, host=base_url, retry_base_delay=hook._retry_base_delay
        )
        return hook

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Label the connection form: the key goes in the password field, the host is optional."""
        return dict(CONNECTION_FORM)

    # -- connection ---------------------------------------------------------------------------

    @cached_property
    def settings(self) -> ClientSettings:
        """Client settings read from the connection (sync: workers)."""
        if self._given_settings is not None:
            return self._given_settings
        try:
            conn = self.get_connection(self.gemini_conn_id)
        except AirflowNotFoundException as exc:
            raise self._missing_connection() from exc
        return settings_from_connection(conn, conn.extra_dejson, retry_base_delay=self._retry_base_delay)

    async def asettings(self) -> ClientSettings:
        """Client settings read from the connection without blocking the event loop (triggers)."""
        if self._async_settings is None and self._given_settings is not None:
            self._async_settings = self._given_settings
        if self._async_settings is None:
            try:
                conn = await get_async_connection(self.gemini_conn_id, self)
            except AirflowNotFoundException as exc:
                raise self._missing_connection() from exc
            extra = await get_async_extra_dejson(conn)
            self._async_settings = settings_from_connection(conn, extra, retry_base_delay=self._retry_base_delay)
        return self._async_settings

    def _missing_connection(self) -> GeminiBatchConfigError:
        return GeminiBatchConfigError(
            f"Connection {self.gemini_conn_id!r} does not exist: create a connection of type 'gemini' with "
            "the API key in its password field (or set AIRFLOW_CONN_"
            f"{self.gemini_conn_id.upper()})."
        )

    @cached_property
    def client(self) -> SyncClient:
        """The sync HTTP client, built on first use."""
        return SyncClient(self.settings, self._transport)

    async def aclient(self) -> AsyncClient:
        """The async HTTP client, built on first use inside the running event loop."""
        if self._async_client is None:
            self._async_client = AsyncClient(await self.asettings(), self._async_transport, self._async_gate)
        return self._async_client

    def close(self) -> None:
        """Close the sync client's connections."""
        if "client" in vars(self):  # Built by the cached_property: close only what exists.
            self.client.close()

    async def aclose(self) -> None:
        """Close the async client's connections."""
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.aclose()

    def test_connection(self) -> tuple[bool, str]:
        """Check the key and the host by listing one batch (the UI's Test button)."""
        try:
            self.client.call(_endpoints.list_batches(1, None))
        except GeminiBatchError as exc:
            return False, str(exc)
        return True, f"Connected to the Gemini API at {self.settings.base_url} ({self.settings.api_version})."


def settings_from_connection(
    conn: Connection, extra: Mapping[str, Any], *, retry_base_delay: float = DEFAULT_RETRY_BASE_DELAY
) -> ClientSettings:
    """Read the settings from a ``gemini`` connection: key in the password, base URL in the host.

    :param extra: the connection's extras, already parsed (the async path reads them without blocking).
    :raises GeminiBatchConfigError: no key, a host that is not an http(s) URL, or a bad number.
    """
    return settings_from_fields(
        f"Connection {conn.conn_id!r}",
        password=conn.password,
        host=conn.host,
        schema=conn.schema,
        port=conn.port,
        extra=extra,
        retry_base_delay=retry_base_delay,
    )


def settings_from_fields(
    source: str,
    *,
    password: str | None,
    host: str | None,
    schema: str | None = None,
    port: int | None = None,
    extra: Mapping[str, Any] | None = None,
    retry_base_delay: float = DEFAULT_RETRY_BASE_DELAY,
) -> ClientSettings:
    """Build the settings from a connection's fields; ``source`` names them in messages (``Connection 'x'``)."""
    extra = extra or {}
    api_key = (password or "").strip()
    if not api_key:
        raise GeminiBatchConfigError(f"{source} has no API key: put the Gemini API key in its password field.")
    # Airflow registers the password with the secret masker when it reads the connection (sync and
    # async alike). A second, synchronous registration here would block a trigger's event loop and
    # crashes triggers on Airflow 3.0 ("cannot use AsyncToSync in the same thread").
    return ClientSettings(
        base_url=_base_url(source, host, schema, port),
        api_key=api_key,
        api_version=str(extra.get("api_version") or DEFAULT_API_VERSION).strip("/"),
        timeout=_number(extra, "timeout", DEFAULT_REQUEST_TIMEOUT, source),
        retry=RetryPolicy(
            max_retries=int(_number(extra, "max_retries", DEFAULT_MAX_RETRIES, source)),
            base_delay=retry_base_delay,
        ),
    )


def _base_url(source: str, host: str | None, schema: str | None, port: int | None) -> str:
    given = host
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        host = f"{schema or 'https'}://{host}" if schema in ("http", "https") else f"https://{host}"
    if port and host.count(":") < 2:
        host = f"{host}:{port}"
    parsed = httpx.URL(host)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise GeminiBatchConfigError(f"{source} has host {given!r}: use a base URL like {DEFAULT_BASE_URL}.")
    return host


def _number(extra: Mapping[str, Any], key: str, default: float, source: str) -> float:
    value = extra.get(key)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0:
        raise GeminiBatchConfigError(f"{source}: extra {key!r} must be a non-negative number, got {value!r}.")
    return number
