"""Fault injection: rules, set through the control API, that make the next matching requests misbehave.

Every rule takes ``count`` (default 1: it fires that many times, then disappears), ``method``
(``GET``, ``POST``, ...) and ``path_contains`` (a substring of the request path) to narrow which
requests it hits. Kinds and their own parameters:

- ``status``: answer with an error status (``status``: 429, 500, 503, ...) in the service's error
  shape, with ``message``, optionally a ``google.rpc.RetryInfo`` detail (``retry_delay``, e.g.
  ``"30s"``) and a ``Retry-After`` header (``retry_after``). With ``seconds`` > 0 it is an outage:
  every matching request is refused for that many seconds after the rule was added, then the rule
  disappears (``count`` does not apply then).
- ``drop_upload``: an upload chunk keeps its first ``after_bytes`` bytes, then the connection drops.
- ``drop_after_create``: a batch create really creates the job, then the connection drops.
- ``drop_download``: a download sends ``after_bytes`` bytes, then the connection drops.
- ``hold_create``: a batch create waits ``seconds`` (> 0) before its job is made and answered. The
  job is made even if the client hangs up meanwhile; other requests are served as usual.
- ``truncate_reply``: the request is handled as usual (a create makes its job), then its reply is
  cut to its first ``after_bytes`` bytes, with a matching ``Content-Length``: a complete HTTP reply
  whose JSON cannot be read.
- ``trickle``: the reply's status and headers go at once, then its body one byte every ``seconds``
  (> 0) seconds; it stops when the client hangs up.
- ``end_download_early``: a download is sent without ``Content-Length`` (chunked) and ends cleanly
  after ``after_lines`` complete lines (counted from the first byte sent, Range or not).
- ``upload_url``: a resumable upload start answers ``X-Goog-Upload-URL: <url>`` exactly as given.

Webhook deliveries (``_delivery``) have their own kinds. For them ``path_contains`` is matched
against the delivery's URL, and ``count`` counts deliveries (one event to one URL):

- ``webhook_drop``: nothing is sent, as if the receiver were down for longer than the service
  retries. With ``seconds`` > 0 it is an outage: every delivery starting within that many seconds
  is dropped (``count`` does not apply then).
- ``webhook_delay``: the first attempt waits ``seconds`` (> 0).
- ``webhook_duplicate``: the event is delivered twice, with the same ``webhook-id``.
- ``webhook_wrong_signature``: every attempt is signed with a wrong key.

``truncate_reply`` and ``trickle`` shape the replies of requests that reach their route (not those
refused by a key check or a ``status`` fault).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from airflow_provider_gemini_batch.emulator._errors import ApiError

__all__ = ["FAULT_KINDS", "FaultBook", "FaultRule"]

_COMMON_FIELDS = ("kind", "count", "method", "path_contains")
#: The parameters each kind takes, besides the common ones.
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "status": ("status", "message", "retry_delay", "retry_after", "seconds"),
    "drop_upload": ("after_bytes",),
    "drop_after_create": (),
    "drop_download": ("after_bytes",),
    "hold_create": ("seconds",),
    "truncate_reply": ("after_bytes",),
    "trickle": ("seconds",),
    "end_download_early": ("after_lines",),
    "upload_url": ("url",),
    "webhook_drop": ("seconds",),
    "webhook_delay": ("seconds",),
    "webhook_duplicate": (),
    "webhook_wrong_signature": (),
}
FAULT_KINDS = frozenset(_KIND_FIELDS)
#: Kinds that mean nothing without a positive ``seconds``.
_NEEDS_SECONDS = {
    "hold_create": "how long to hold the create",
    "trickle": "the pause between two bytes",
    "webhook_delay": "how long the first attempt waits",
}
#: Kinds that, given ``seconds``, last that long instead of ``count`` firings.
_TIMED_KINDS = ("status", "webhook_drop")
_TEXT_FIELDS = ("method", "path_contains", "message", "retry_delay", "retry_after", "url")

#: What the live service says with each status (it varies; these are the common wordings).
_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}


@dataclasses.dataclass
class FaultRule:
    """One injected fault: what it does and which requests it hits."""

    kind: str
    count: int = 1
    method: str | None = None
    path_contains: str | None = None
    status: int = 500
    message: str | None = None
    retry_delay: str | None = None
    retry_after: str | None = None
    after_bytes: int = 0
    seconds: float = 0.0
    after_lines: int = 0
    url: str | None = None
    #: For an outage, the ``time.monotonic()`` at which it ends; set when the rule is added.
    active_until: float | None = dataclasses.field(default=None, init=False)

    @classmethod
    def from_json(cls, payload: object) -> FaultRule:
        """Build a rule from the control API's JSON.

        :raises ValueError: on an unknown kind or field, a field the kind does not take, or an
            invalid value; the message says what to send instead.
        """
        if not isinstance(payload, dict):
            raise ValueError("A fault must be a JSON object with a 'kind'.")
        kind = payload.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}: use one of {sorted(FAULT_KINDS)}.")
        allowed = _COMMON_FIELDS + _KIND_FIELDS[kind]
        known = {field.name for field in dataclasses.fields(cls) if field.init}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ValueError(f"Unknown fault fields {unknown}: a {kind} fault takes {sorted(allowed)}.")
        misplaced = sorted(set(payload) - set(allowed))
        if misplaced:
            raise ValueError(f"Fault fields {misplaced} do not apply to a {kind} fault: it takes {sorted(allowed)}.")
        rule = cls(**payload)
        rule._validate(explicit_count="count" in payload)
        return rule

    def _validate(self, *, explicit_count: bool) -> None:
        for name in ("count", "status", "after_bytes", "after_lines"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Fault field {name} must be an integer >= 0, got {value!r}.")
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"Fault field {name} must be a string, got {value!r}.")
        if (
            not isinstance(self.seconds, int | float)
            or isinstance(self.seconds, bool)
            or not math.isfinite(self.seconds)
            or self.seconds < 0
        ):
            raise ValueError(f"Fault field seconds must be a number >= 0, got {self.seconds!r}.")
        if self.kind in _NEEDS_SECONDS and self.seconds <= 0:
            raise ValueError(
                f"A {self.kind} fault needs seconds > 0 ({_NEEDS_SECONDS[self.kind]}), got {self.seconds}."
            )
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"A status fault needs an HTTP error status (400-599), got {self.status}.")
        if self.timed and explicit_count:
            raise ValueError(
                f"A {self.kind} fault with seconds > 0 hits everything matching for that long: "
                "send either seconds (an outage) or count (that many), not both."
            )
        if self.kind == "upload_url" and not self.url:
            raise ValueError("An upload_url fault needs url: the X-Goog-Upload-URL the upload start answers with.")

    @property
    def timed(self) -> bool:
        """Whether this rule lasts a number of seconds (an outage) instead of ``count`` firings."""
        return self.kind in _TIMED_KINDS and self.seconds > 0

    def expired(self, now: float) -> bool:
        """Tell whether a timed rule's time is over at ``now`` (``time.monotonic()``)."""
        return self.active_until is not None and now >= self.active_until

    def matches(self, kind: str, method: str, path: str) -> bool:
        """Tell whether this rule applies to a request."""
        return (
            self.kind == kind
            and (self.timed or self.count > 0)
            and (self.method is None or self.method.upper() == method.upper())
            and (self.path_contains is None or self.path_contains in path)
        )

    def as_error(self) -> ApiError:
        """The error a ``status`` fault answers with."""
        details = []
        if self.retry_delay is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": self.retry_delay})
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        message = self.message or _MESSAGES.get(self.status, "Injected fault.")
        return ApiError(self.status, message, details=details, headers=headers)

    def as_json(self, now: float) -> dict[str, Any]:
        """The rule as the control API lists it; an outage also says how long it has left."""
        listed = {field.name: getattr(self, field.name) for field in dataclasses.fields(self) if field.init}
        if self.active_until is not None:
            listed["seconds_left"] = max(0.0, self.active_until - now)
        return listed


class FaultBook:
    """The injected fault rules, in the order they were added."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        """Append a rule; earlier rules fire first. An outage starts now."""
        if rule.timed:
            rule.active_until = time.monotonic() + rule.seconds
        self._rules.append(rule)

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def take(self, kind: str, method: str, path: str) -> FaultRule | None:
        """Return the first rule of ``kind`` matching the request and use up one of its firings."""
        self._forget_expired()
        for rule in self._rules:
            if rule.matches(kind, method, path):
                if not rule.timed:
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                return rule
        return None

    def as_json(self) -> list[dict[str, Any]]:
        """The pending rules, as JSON."""
        self._forget_expired()
        now = time.monotonic()
        return [rule.as_json(now) for rule in self._rules]

    def _forget_expired(self) -> None:
        now = time.monotonic()
        self._rules = [rule for rule in self._rules if not rule.expired(now)]
