"""Waiting out quota at create: how long to wait before sending a refused create again. Pure, no I/O.

A create answered 429 RESOURCE_EXHAUSTED (the enqueued-token limit of a model, or the
concurrent-jobs limit of a project) made no job (``docs/protocol.md``, "Quota at create"), so sending
it again later cannot pay twice. The submit operator waits between creates, deferred (on
``triggers.quota.GeminiQuotaWaitTrigger``, holding no worker slot) or, with ``deferrable=False``, in
the worker; this module decides how long, the same way for both.
"""

from __future__ import annotations

import random

from airflow_provider_gemini_batch.settings import DEFAULT_QUOTA_MAX_DELAY, DEFAULT_QUOTA_RETRY_DELAY

__all__ = ["quota_wait_seconds"]


def quota_wait_seconds(
    attempt: int,
    server_delay: float | None,
    now: float,
    deadline: float,
    *,
    base_delay: float = DEFAULT_QUOTA_RETRY_DELAY,
    max_delay: float = DEFAULT_QUOTA_MAX_DELAY,
) -> float | None:
    """Seconds to wait before create number ``attempt + 2``, or ``None`` when the deadline has passed.

    The service's ``RetryInfo.retryDelay`` (``server_delay``) is honoured when it gives one, plus up to
    10% so that many waiting tasks do not all come back at once; without one, the wait starts at
    ``base_delay`` and doubles with each refusal up to ``max_delay``, jittered down by up to half.
    The last wait ends at the deadline, so one more create is tried there.

    :param attempt: how many refusals came before this one (0 for the first).
    :param deadline: Unix time after which no create is sent.
    """
    left = deadline - now
    if left <= 0:
        return None
    if server_delay is not None:
        delay = server_delay * random.uniform(1.0, 1.1)
    else:
        delay = min(max_delay, base_delay * 2 ** min(attempt, 32)) * random.uniform(0.5, 1.0)
    return max(0.0, min(delay, left))
