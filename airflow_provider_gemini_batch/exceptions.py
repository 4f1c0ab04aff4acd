"""Exceptions raised by the Gemini Batch provider.

Every exception is a ``GeminiBatchError``, which is an ``AirflowException``, so a DAG can catch the
whole family or branch on one class::

    GeminiBatchError (AirflowException)
    ├── GeminiBatchConfigError ............ the connection is missing or unusable (no API key, bad URL)
    ├── GeminiBatchInputError (ValueError)  input rejected locally, before anything is uploaded or paid for
    ├── GeminiBatchAPIError ............... the service answered with an error status
    │   ├── GeminiBatchInvalidArgumentError ... 400 INVALID_ARGUMENT / FAILED_PRECONDITION
    │   ├── GeminiBatchPermissionError ........ 401 / 403 (bad key, missing or foreign file)
    │   ├── GeminiBatchNotFoundError .......... 404 (unknown model or batch)
    │   ├── GeminiBatchRateLimitError ......... 429 RESOURCE_EXHAUSTED, after retries
    │   └── GeminiBatchServerError ............ 408 / 5xx, after retries
    ├── GeminiBatchConnectionError ........ connection failure or timeout, after retries
    ├── GeminiBatchAmbiguousCreateError ... a batch create whose outcome is unknown: never resent blindly
    │   └── GeminiBatchAmbiguousWebhookCreateError  the same for a webhook create without a webhook_id
    ├── GeminiBatchIncompleteResults ...... fewer results read than the job had requests, after reading again
    └── GeminiBatchJobError ............... the batch job itself ended badly
        ├── GeminiBatchFailed ............. state FAILED
        ├── GeminiBatchCancelled .......... state CANCELLED
        ├── GeminiBatchExpired ............ state EXPIRED (pending or running for more than 48 h)
        ├── GeminiBatchTimeout ............ our own wall-clock deadline passed before the job ended
        └── GeminiBatchPartialFailure ..... SUCCEEDED, but more requests failed than the policy allows

Messages carry the HTTP status, the service's message (truncated: prompts can be echoed there) and
what to do next. They never carry the API key or whole response bodies.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.common.compat.sdk import AirflowException

__all__ = [
    "GeminiBatchAPIError",
    "GeminiBatchAmbiguousCreateError",
    "GeminiBatchAmbiguousWebhookCreateError",
    "GeminiBatchCancelled",
    "GeminiBatchConfigError",
    "GeminiBatchConnectionError",
    "GeminiBatchError",
    "GeminiBatchExpired",
    "GeminiBatchFailed",
    "GeminiBatchIncompleteResults",
    "GeminiBatchInputError",
    "GeminiBatchInvalidArgumentError",
    "GeminiBatchJobError",
    "GeminiBatchNotFoundError",
    "GeminiBatchPartialFailure",
    "GeminiBatchPermissionError",
    "GeminiBatchRateLimitError",
    "GeminiBatchServerError",
    "GeminiBatchTimeout",
    "truncate",
]

MAX_SERVICE_MESSAGE_CHARS = 300


def truncate(text: str, limit: int = MAX_SERVICE_MESSAGE_CHARS) -> str:
    """Shorten ``text`` to ``limit`` characters, marking the cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sentences(text: str, hint: str) -> str:
    """``text``, then ``hint`` as a sentence of its own, with exactly one period between them."""
    if not hint:
        return text
    return f"{text.rstrip().rstrip('.')}. {hint}"


class GeminiBatchError(AirflowException):
    """Root of every error this provider raises."""


class GeminiBatchConfigError(GeminiBatchError):
    """The Airflow connection is missing or cannot be used (no API key, malformed host)."""


class GeminiBatchInputError(GeminiBatchError, ValueError):
    """Input rejected before any I/O: the message names what to fix (line numbers, the limit hit)."""


class GeminiBatchAPIError(GeminiBatchError):
    """The Gemini API answered with an error status.

    :param http_status: the HTTP status code.
    :param status: the google.rpc status name from the body (``RESOURCE_EXHAUSTED``), or ``None``.
    :param service_message: the service's own message, already truncated.
    :param hint: what the user can do about it.
    :param reason: the ``ErrorInfo.reason`` from the body (``API_KEY_INVALID``), or ``None``.
    """

    def __init__(
        self,
        http_status: int,
        status: str | None,
        service_message: str,
        *,
        hint: str = "",
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.http_status = http_status
        self.status = status
        self.service_message = truncate(service_message)
        self.hint = hint
        self.reason = reason
        self.retry_after = retry_after
        label = f"HTTP {http_status}" + (f" {status}" if status else "")
        text = f"Gemini API error {label}: {self.service_message or '(no message)'}"
        super().__init__(_sentences(text, hint))


class GeminiBatchInvalidArgumentError(GeminiBatchAPIError):
    """400: the request was malformed or not allowed in the job's current state."""


class GeminiBatchPermissionError(GeminiBatchAPIError):
    """401/403: the API key is missing or invalid, or the file is missing or belongs to another project."""


class GeminiBatchNotFoundError(GeminiBatchAPIError):
    """404: the model or batch does not exist."""


class GeminiBatchRateLimitError(GeminiBatchAPIError):
    """429: quota or enqueued-token limit hit, and still hit after every retry."""


class GeminiBatchServerError(GeminiBatchAPIError):
    """408 or 5xx: the service failed, and still failed after every retry."""


class GeminiBatchConnectionError(GeminiBatchError):
    """The service could not be reached, or did not answer in time, after every retry."""


class GeminiBatchAmbiguousCreateError(GeminiBatchError):
    """A batch create was sent but its reply was lost: a job may or may not exist.

    Creating is not idempotent, so resending would risk a second paid job. Look the job up
    (``list_batches``, by display name) before creating again.
    """

    def __init__(self, model: str, display_name: str | None, cause: str, *, message: str | None = None) -> None:
        self.model = model
        self.display_name = display_name
        named = f" with display name {display_name!r}" if display_name else ""
        super().__init__(
            message
            or f"The create request for a batch on {model}{named} was sent, but its reply was lost ({cause}). "
            "A job may have been created and may be billing. It was NOT resent, to avoid a duplicate paid "
            "job: list batches and look for this display name before creating again."
        )


class GeminiBatchAmbiguousWebhookCreateError(GeminiBatchAmbiguousCreateError):
    """A webhook create without ``webhook_id`` was sent but its reply was lost: a webhook may exist.

    A ``GeminiBatchAmbiguousCreateError``, worded for a webhook. Its signing secret, if it was made,
    is lost with the reply: find it with ``list_webhooks`` (by uri) and rotate its secret, or delete it.
    """

    def __init__(self, uri: str, cause: str) -> None:
        self.uri = uri
        super().__init__(
            "webhooks",
            None,
            cause,
            message=f"The create request for a webhook to {uri} was sent, but its reply was lost ({cause}). A "
            "webhook may have been created; it was NOT resent, to avoid a second one. Look for it with "
            "list_webhooks (by uri): rotate its signing secret (the one issued is lost with the reply) or "
            "delete it. Pass webhook_id to make creates safe to retry.",
        )


class GeminiBatchJobError(GeminiBatchError):
    """A batch job ended in a state that the task must not treat as success.

    :param batch_name: the job's name, ``batches/...``.
    :param state: the job's final state name, e.g. ``BATCH_STATE_FAILED``.
    :param service_message: the job's error message from the service, if any.
    """

    default_hint = ""

    def __init__(self, batch_name: str, state: str, service_message: str | None = None, hint: str = "") -> None:
        self.batch_name = batch_name
        self.state = state
        self.service_message = truncate(service_message) if service_message else None
        text = self.headline(batch_name, state.removeprefix("BATCH_STATE_"))
        if self.service_message:
            text += f": {self.service_message}"
        super().__init__(_sentences(text, hint or self.default_hint))

    @staticmethod
    def headline(batch_name: str, state: str) -> str:
        """The message's first words."""
        return f"Batch {batch_name} ended in state {state}"


class GeminiBatchFailed(GeminiBatchJobError):
    """The job ended FAILED."""

    default_hint = "Check the input file and the request format; the service's message says which."


class GeminiBatchCancelled(GeminiBatchJobError):
    """The job ended CANCELLED (by a user, another task, or this provider's cancel-on-exit)."""


class GeminiBatchExpired(GeminiBatchJobError):
    """The job ended EXPIRED: it stayed pending or running for more than 48 hours and has no results."""

    default_hint = "Submit it again, perhaps split into smaller jobs or at a quieter time."


class GeminiBatchTimeout(GeminiBatchJobError):
    """The wall-clock deadline passed before the job reached a terminal state."""

    @staticmethod
    def headline(batch_name: str, state: str) -> str:
        """Say the wait ended, not the job: it was still going."""
        return f"Gave up waiting for batch {batch_name}"


class GeminiBatchPartialFailure(GeminiBatchJobError):
    """The job SUCCEEDED but more of its requests failed than the partial-failure policy allows.

    :param first_errors: ``(key, message)`` of the first failed requests, from a bounded look at the
        results (``GeminiBatchHook.sample_errors``); the first :attr:`errors_quoted` are quoted in the
        message, each shortened, so the user sees why without downloading anything. Keys are ``None``
        for inline requests sent without one. Empty when they could not be read.
    """

    errors_quoted = 3
    key_chars = 60
    message_chars = 160

    def __init__(
        self,
        batch_name: str,
        state: str,
        service_message: str | None = None,
        hint: str = "",
        first_errors: Sequence[tuple[str | None, str]] = (),
    ) -> None:
        self.first_errors = tuple(
            (None if key is None else truncate(key, self.key_chars), truncate(message, self.message_chars).rstrip("."))
            for key, message in first_errors[: self.errors_quoted]
        )
        if self.first_errors:
            quoted = "; ".join(
                f"{'(no key)' if key is None else repr(key)}: {message}" for key, message in self.first_errors
            )
            hint = _sentences(f"First failed requests: {quoted}", hint or self.default_hint)
        super().__init__(batch_name, state, service_message, hint)


class GeminiBatchIncompleteResults(GeminiBatchError):
    """A finished job's results lack some of its requests, even after reading them again.

    :param batch_name: the job's name, ``batches/...``.
    :param expected_count: the results expected: the job's request count, or the number of expected keys.
    :param read_count: the results read (distinct expected keys, when the keys were known).
    :param missing_keys: the keys that have no result, when the expected keys were known; else empty.
    """

    keys_shown = 10

    def __init__(self, batch_name: str, expected_count: int, read_count: int, missing_keys: Sequence[str] = ()) -> None:
        self.batch_name = batch_name
        self.expected_count = expected_count
        self.read_count = read_count
        self.missing_count = expected_count - read_count
        self.missing_keys = tuple(missing_keys)
        text = f"Batch {batch_name}: read {read_count} of {expected_count} results; {self.missing_count} missing"
        if self.missing_keys:
            shown = ", ".join(repr(key) for key in self.missing_keys[: self.keys_shown])
            more = len(self.missing_keys) - self.keys_shown
            text += f" (keys {truncate(shown)}{f' and {more} more' if more > 0 else ''})"
        super().__init__(
            f"{text}. The results were read again up to the connection's max_retries. Run the task again "
            "later; if the same results stay missing, the job's results and its batchStats disagree: "
            "resubmit the missing requests."
        )
