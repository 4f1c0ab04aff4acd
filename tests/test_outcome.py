"""A job that fails its partial-failure policy says why: the first per-request errors, quoted in the message.

The policy (``outcome.py``) is pure and takes the sample as data; the hook reads it with a bounded
look at the results (``tests/hooks/test_error_sample.py``). The end-to-end class runs the submit
operator and the sensor against the emulator, deferrable and not.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchPartialFailure
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import Batch, BatchResult, Status
from airflow_provider_gemini_batch.operators import GeminiSubmitBatchOperator
from airflow_provider_gemini_batch.outcome import (
    ExitActions,
    FailurePolicy,
    raise_for_outcome,
    settle,
    wants_error_sample,
)
from airflow_provider_gemini_batch.sensors import GeminiBatchSensor
from airflow_provider_gemini_batch.watch import WaitOutcome
from tests.airflow_flow import run_task

NAME = "batches/b1"


def finished(state: str = "SUCCEEDED", failed: int = 2, total: int = 4) -> Batch:
    stats = {"requestCount": str(total), "failedRequestCount": str(failed)}
    metadata = {"name": NAME, "state": f"BATCH_STATE_{state}", "batchStats": stats}
    return Batch.model_validate({"name": NAME, "metadata": metadata, "done": True})


def failure(key: str | None, message: str) -> BatchResult:
    return BatchResult(key=key, error=Status(code=3, message=message, status="INVALID_ARGUMENT"))


def partial_failure(first_errors: list[BatchResult], policy: FailurePolicy | None = None) -> str:
    with pytest.raises(GeminiBatchPartialFailure) as raised:
        raise_for_outcome(finished(), policy or FailurePolicy(max_failed_requests=1), first_errors)
    return str(raised.value)


class TestTheMessageQuotesTheFirstErrors:
    def test_keys_and_messages_are_quoted_between_the_count_and_the_hint(self) -> None:
        message = partial_failure([failure("k1", "contents must not be empty."), failure("k2", "bad schema")])
        assert "2 of 4 requests failed, more than max_failed_requests=1" in message
        assert "First failed requests: 'k1': contents must not be empty; 'k2': bad schema. The successful" in message
        assert message.index("First failed") < message.index("still downloadable")

    def test_each_quote_is_short_and_on_one_line(self) -> None:
        message = partial_failure([failure("k" * 500, "a prompt\necho " + "x" * 5000)])
        assert "\n" not in message
        assert "a prompt echo" in message
        assert len(message) < 800
        assert "…" in message

    def test_only_the_first_few_are_quoted(self) -> None:
        message = partial_failure([failure(f"k{number}", f"error {number}") for number in range(50)])
        quoted = GeminiBatchPartialFailure.errors_quoted
        assert f"'k{quoted - 1}'" in message
        assert f"'k{quoted}'" not in message

    def test_the_exception_carries_the_quoted_pairs(self) -> None:
        with pytest.raises(GeminiBatchPartialFailure) as raised:
            raise_for_outcome(finished(), FailurePolicy(max_failed_requests=0), [failure("k1", "no")])
        assert raised.value.first_errors == (("k1", "no"),)
        assert "'k1': no. The successful results" in str(raised.value)

    def test_an_inline_result_without_a_key_is_quoted_by_position(self) -> None:
        assert "(no key): contents must not be empty" in partial_failure([failure(None, "contents must not be empty")])

    def test_without_a_sample_the_message_is_as_before(self) -> None:
        message = partial_failure([])
        assert "First failed" not in message
        assert "2 of 4 requests failed" in message


class TestWhenASampleIsWanted:
    @pytest.mark.parametrize(
        ("kind", "state", "failed", "wanted"),
        [
            ("terminal", "SUCCEEDED", 2, True),
            ("terminal", "SUCCEEDED", 1, False),  # Within the policy: nothing to explain.
            ("terminal", "SUCCEEDED", 0, False),
            ("terminal", "FAILED", 2, False),  # No results to look at.
            ("timeout", "SUCCEEDED", 2, False),
            ("outage", "RUNNING", 2, False),
        ],
    )
    def test_only_for_a_succeeded_job_over_its_policy(self, kind: Any, state: str, failed: int, wanted: bool) -> None:
        outcome = WaitOutcome(kind, finished(state, failed), "")
        assert wants_error_sample(outcome, FailurePolicy(max_failed_requests=1)) is wanted

    def test_settle_quotes_the_sample_it_is_given(self) -> None:
        outcome = WaitOutcome("terminal", finished(), "")
        with pytest.raises(GeminiBatchPartialFailure, match="'k9': quota"):
            settle(outcome, FailurePolicy(max_failed_ratio=0.1), ExitActions(), _never_cancel, [failure("k9", "quota")])


def _never_cancel(name: str, why: str) -> None:
    raise AssertionError(f"cancelled {name}: {why}")


def rows(count: int, failing: set[int]) -> list[dict[str, Any]]:
    """Requests k0..; those in ``failing`` carry the emulator's failure marker, so it fails them one by one."""
    good = {"contents": [{"parts": [{"text": "fine"}]}]}
    bad = {"contents": [{"parts": [{"text": "a prompt the emulator refuses [[fail]]"}]}]}
    return [{"key": f"k{number}", "request": bad if number in failing else good} for number in range(count)]


@pytest.fixture
def emulator(gemini_connection: EmulatorHandle) -> EmulatorHandle:
    gemini_connection.control.configure(running_seconds=0.2)
    return gemini_connection


@pytest.fixture(params=[True, False], ids=["deferrable", "sync"])
def deferrable(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


class TestEndToEnd:
    """Some requests fail one by one, the policy is exceeded, and the task's error says which and why."""

    def test_the_submit_operator_quotes_the_first_failures(self, emulator: EmulatorHandle, deferrable: bool) -> None:
        operator = GeminiSubmitBatchOperator(
            task_id="submit",
            model="gemini-2.5-flash",
            requests=rows(6, failing={1, 4}),
            max_failed_ratio=0.2,
            deferrable=deferrable,
            poll_interval=0.1,
        )
        with pytest.raises(GeminiBatchPartialFailure) as raised:
            run_task(operator)
        message = str(raised.value)
        assert "2 of 6 requests failed, more than max_failed_ratio=0.2" in message
        assert "'k1': Request rejected: the prompt contains the emulator failure marker" in message
        assert "'k4': Request rejected" in message
        assert emulator.api_key not in message
        assert "a prompt the emulator refuses" not in message, "request bodies are not quoted"

    def test_the_sensor_quotes_the_first_failures_of_a_file_job(
        self, emulator: EmulatorHandle, deferrable: bool
    ) -> None:
        hook = GeminiBatchHook()
        uploaded = hook.upload_records(rows(5, failing={0, 2, 3}))
        batch = hook.create_batch("gemini-2.5-flash", input_file=uploaded.name)
        sensor = GeminiBatchSensor(
            task_id="wait", batch_name=batch.name, max_failed_requests=2, deferrable=deferrable, poke_interval=0.1
        )
        with pytest.raises(GeminiBatchPartialFailure) as raised:
            run_task(sensor)
        message = str(raised.value)
        assert "3 of 5 requests failed, more than max_failed_requests=2" in message
        for key in ("k0", "k2", "k3"):
            assert f"'{key}': Request rejected" in message
        assert len(downloads(emulator)) == 1, "the quotes came from one look at the results file"

    def test_within_the_policy_nothing_is_read(self, emulator: EmulatorHandle) -> None:
        hook = GeminiBatchHook()
        uploaded = hook.upload_records(rows(4, failing={0}))
        operator = GeminiSubmitBatchOperator(
            task_id="submit",
            model="gemini-2.5-flash",
            input_file=uploaded.name,
            max_failed_requests=1,
            deferrable=False,
            poll_interval=0.1,
        )
        run_task(operator)
        assert downloads(emulator) == []


def downloads(emulator: EmulatorHandle) -> list[str]:
    return [request["path"] for request in emulator.control.requests() if request["path"].startswith("/download/")]
