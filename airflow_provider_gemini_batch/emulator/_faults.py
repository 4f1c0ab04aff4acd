"""Fault injection: rules, set through the control API, that make the next matching requests fail.

Kinds (each rule fires ``count`` times, then disappears; ``method`` and ``path_contains``
narrow which requests it matches):

- ``status``: answer with an error status (429, 500, 503, ...) in the service's error shape,
  optionally with a ``google.rpc.RetryInfo`` detail (``retry_delay``) and a ``Retry-After`` header.
- ``drop_upload``: an upload chunk keeps its first ``after_bytes`` bytes, then the connection drops.
- ``drop_after_create``: a batch create really creates the job, then the connection drops.
- ``drop_download``: a download sends ``after_bytes`` bytes, then the connection drops.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow_provider_gemini_batch.emulator._errors import ApiError

__all__ = ["FAULT_KINDS", "FaultBook", "FaultRule"]

FAULT_KINDS = frozenset({"status", "drop_upload", "drop_after_create", "drop_download"})

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

    @classmethod
    def from_json(cls, payload: object) -> FaultRule:
        """Build a rule from the control API's JSON.

        :raises ValueError: on an unknown kind or field, or an invalid value.
        """
        if not isinstance(payload, dict):
            raise ValueError("A fault must be a JSON object with a 'kind'.")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ValueError(f"Unknown fault fields {unknown}: use {sorted(known)}.")
        if payload.get("kind") not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {payload.get('kind')!r}: use one of {sorted(FAULT_KINDS)}.")
        rule = cls(**payload)
        for name in ("count", "status", "after_bytes"):
            value = getattr(rule, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Fault field {name} must be an integer >= 0, got {value!r}.")
        if rule.kind == "status" and not 400 <= rule.status <= 599:
            raise ValueError(f"A status fault needs an HTTP error status (400-599), got {rule.status}.")
        return rule

    def matches(self, kind: str, method: str, path: str) -> bool:
        """Tell whether this rule applies to a request."""
        return (
            self.kind == kind
            and self.count > 0
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


class FaultBook:
    """The injected fault rules, in the order they were added."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        """Append a rule; earlier rules fire first."""
        self._rules.append(rule)

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def take(self, kind: str, method: str, path: str) -> FaultRule | None:
        """Return the first rule of ``kind`` matching the request and use up one of its firings."""
        for rule in self._rules:
            if rule.matches(kind, method, path):
                rule.count -= 1
                if rule.count == 0:
                    self._rules.remove(rule)
                return rule
        return None

    def as_json(self) -> list[dict[str, Any]]:
        """The pending rules, as JSON."""
        return [dataclasses.asdict(rule) for rule in self._rules]
