"""The retry policy shared by the sync and async clients: what to retry, and how long to wait.

Retries cover 408, 429, 5xx and connection errors, with jittered exponential backoff that honours
the delay the server asked for. A batch create is never resent once its body may have reached the
server: that error is ambiguous, resolved by lookup (``idempotency.py``), never by sending again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_provider_gemini_batch.exceptions import GeminiBatchAPIError
from airflow_provider_gemini_batch.hooks._endpoints import ApiCall
from airflow_provider_gemini_batch.hooks._errors import ambiguous_create, connection_error
from airflow_provider_gemini_batch.settings import DEFAULT_MAX_RETRIES, DEFAULT_RETRY_BASE_DELAY

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# A create rejected with this never reached the backend, so resending cannot duplicate a job. A 503
# may come from a front end after the backend accepted the job: it counts as ambiguous.
CREATE_SAFE_STATUS = frozenset({429})
# Transport errors raised before any byte of the request left this machine.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait.

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param base_delay: the first backoff, doubled on each retry, jittered down by up to half.
    :param max_delay: the cap on our own backoff (a longer server-requested delay is still honoured).
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    base_delay: float = DEFAULT_RETRY_BASE_DELAY
    max_delay: float = 60.0

    def backoff(self, attempt: int, server_delay: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        ours = min(self.max_delay, self.base_delay * 2**attempt) * random.uniform(0.5, 1.0)
        if server_delay is None:
            return float(ours)
        # Honour the server's delay, plus a little jitter so that many clients don't return together.
        return server_delay + random.uniform(0.0, min(1.0, self.base_delay) * 0.1)

    def on_status(self, error: GeminiBatchAPIError, attempt: int, call: ApiCall[Any]) -> float:
        """Return the delay before retrying after an error reply, or raise when retrying is wrong."""
        if error.http_status not in RETRYABLE_STATUS or (error.http_status == 429 and not call.retry_quota):
            raise error
        if not call.retry_safe and error.http_status not in CREATE_SAFE_STATUS:
            # A 408/5xx to a create may come after the job was made: its outcome is unknown.
            raise ambiguous_create(call, f"HTTP {error.http_status} {error.status or ''}".strip()) from error
        if attempt >= self.max_retries:
            raise error
        return self.backoff(attempt, error.retry_after)

    def on_transport_error(self, exc: httpx.TransportError, attempt: int, call: ApiCall[Any]) -> float:
        """Return the delay before retrying after a transport error, or raise the right exception."""
        if not call.retry_safe and not isinstance(exc, _NOT_SENT_ERRORS):
            raise ambiguous_create(call, type(exc).__name__) from exc
        if attempt >= self.max_retries:
            raise connection_error(call.description, exc, attempt) from exc
        return self.backoff(attempt)
