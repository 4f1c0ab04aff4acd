"""How long a create refused for quota waits before it is sent again (``quota.py``)."""

from __future__ import annotations

import pytest

from airflow_provider_gemini_batch.quota import quota_wait_seconds


def test_the_services_retry_delay_is_honoured_with_a_little_jitter_up() -> None:
    delays = {quota_wait_seconds(5, 37.0, now=0.0, deadline=1e6) for _ in range(50)}
    assert all(37.0 <= delay <= 40.7 for delay in delays if delay is not None)


def test_without_a_retry_delay_the_backoff_doubles_up_to_the_cap() -> None:
    first = quota_wait_seconds(0, None, now=0.0, deadline=1e6, base_delay=30, max_delay=600) or 0.0
    third = quota_wait_seconds(2, None, now=0.0, deadline=1e6, base_delay=30, max_delay=600) or 0.0
    late = quota_wait_seconds(40, None, now=0.0, deadline=1e6, base_delay=30, max_delay=600) or 0.0
    assert 15 <= first <= 30
    assert 60 <= third <= 120
    assert 300 <= late <= 600


def test_the_last_wait_ends_at_the_deadline_and_then_it_gives_up() -> None:
    assert quota_wait_seconds(0, 37.0, now=100.0, deadline=110.0) == pytest.approx(10.0)
    assert quota_wait_seconds(0, 37.0, now=110.0, deadline=110.0) is None
