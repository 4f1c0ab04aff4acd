"""Project webhooks: the resource, its signing secrets, and Standard Webhooks signatures.

The resource follows the google-genai SDK's webhooks client (``google/genai/_gaos``), which reads
and writes **snake_case** JSON here (``subscribed_events``, ``new_signing_secret``,
``signing_secrets[].truncated_secret``), unlike the Batch API's camelCase; requests are accepted in
either spelling. The ``id`` is the resource id; ``name`` is the user's own label for it. A secret
is shown whole exactly twice: ``new_signing_secret`` in the create reply and ``secret`` in the
``:rotateSigningSecret`` reply (docs/protocol.md "Webhooks").

Signatures are written by hand here (``hmac``), independently of the ``standardwebhooks`` library the
provider's receiver uses, so that the tests checking one against the other mean something.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_gemini_batch.emulator._errors import ApiError, invalid_argument, not_found
from airflow_provider_gemini_batch.emulator._wire import camel_to_snake, new_resource_id, omit_empty, timestamp

__all__ = [
    "BATCH_EVENTS",
    "WEBHOOK_EVENTS",
    "Webhook",
    "WebhookStore",
    "check_uri",
    "new_signing_secret",
    "secret_key",
    "sign",
]

_SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of every secret, not a secret)
_NANOS = 1_000_000_000
#: How long a rotated-out secret stays valid unless revoked at once.
_PREVIOUS_SECRET_NANOS = 24 * 3600 * _NANOS
#: The event types a batch job's end announces, by final state.
BATCH_EVENTS = {
    "SUCCEEDED": "batch.succeeded",
    "FAILED": "batch.failed",
    "CANCELLED": "batch.cancelled",
    "EXPIRED": "batch.expired",
}
#: Every event a webhook may subscribe to (the SDK's list, and batch.cancelled from docs/protocol.md).
WEBHOOK_EVENTS = frozenset(
    {
        *BATCH_EVENTS.values(),
        "interaction.requires_action",
        "interaction.completed",
        "interaction.failed",
        "video.generated",
    }
)
_STATES = ("enabled", "disabled", "disabled_due_to_failed_deliveries")
_REVOCATIONS = {
    "revoke_previous_secrets_after_h24": _PREVIOUS_SECRET_NANOS,
    "revoke_previous_secrets_immediately": 0,
}
_UPDATABLE = ("name", "uri", "subscribed_events", "state")


def new_signing_secret() -> str:
    """Return a fresh secret: ``whsec_`` and the base64 of 32 random bytes."""
    return _SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: the base64-decoded part after the prefix.

    :raises ValueError: if ``secret`` is not ``whsec_`` and base64.
    """
    if not isinstance(secret, str) or not secret.startswith(_SECRET_PREFIX):
        raise ValueError("A signing secret must be a string starting with 'whsec_'.")
    try:
        key = base64.b64decode(secret.removeprefix(_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("A signing secret is 'whsec_' followed by base64.") from error
    if not key:
        raise ValueError("A signing secret needs key bytes after 'whsec_'.")
    return key


def sign(secrets_in_use: Iterable[str], message_id: str, unix_seconds: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<base64 HMAC-SHA256>`` per secret, space-separated.

    The signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` (Standard Webhooks).
    """
    content = f"{message_id}.{unix_seconds}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret_key(secret), content, hashlib.sha256).digest()).decode()
        for secret in secrets_in_use
    )


def check_uri(uri: object, field: str) -> str:
    """Return ``uri`` if it is an absolute http(s) URL; 400 otherwise."""
    if isinstance(uri, str):
        parts = urlsplit(uri)
        if parts.scheme in ("http", "https") and parts.hostname:
            return uri
    raise invalid_argument(f"{field} must be an absolute http(s) URL, got {str(uri)[:100]!r}.")


@dataclasses.dataclass
class _Secret:
    value: str
    expire_ns: int | None = None

    def valid(self, now_ns: int) -> bool:
        return self.expire_ns is None or now_ns < self.expire_ns

    def as_json(self) -> dict[str, Any]:
        body = self.value.removeprefix(_SECRET_PREFIX)
        truncated = f"{_SECRET_PREFIX}{body[:4]}...{body[-4:]}"
        expire = timestamp(self.expire_ns) if self.expire_ns is not None else None
        return omit_empty({"truncated_secret": truncated, "expire_time": expire})


@dataclasses.dataclass
class Webhook:
    """One registered webhook; its secrets newest first."""

    webhook_id: str
    uri: str
    subscribed_events: list[str]
    name: str | None = None
    state: str = "enabled"
    signing_secrets: list[_Secret] = dataclasses.field(default_factory=list)
    create_ns: int = dataclasses.field(default_factory=time.time_ns)
    update_ns: int = 0

    def valid_secrets(self) -> list[str]:
        """The secrets a delivery is signed with now: the current one and any not yet revoked."""
        now = time.time_ns()
        return [secret.value for secret in self.signing_secrets if secret.valid(now)]

    def receives(self, event_type: str) -> bool:
        """Whether an event of this type is delivered to this webhook."""
        return self.state == "enabled" and event_type in self.subscribed_events

    def rotate(self, revocation: str) -> str:
        """Make a new current secret; the others expire per ``revocation``; return the new one."""
        now = time.time_ns()
        keep_nanos = _REVOCATIONS[revocation]
        kept = []
        for secret in self.signing_secrets:
            if keep_nanos and secret.valid(now):
                if secret.expire_ns is None:
                    secret.expire_ns = now + keep_nanos
                kept.append(secret)
        fresh = _Secret(new_signing_secret())
        self.signing_secrets = [fresh, *kept]
        self.update_ns = now
        return fresh.value

    def as_json(self, *, new_secret: str | None = None) -> dict[str, Any]:
        """The Webhook as the service returns it; ``new_secret`` only in the create reply."""
        now = time.time_ns()
        return omit_empty(
            {
                "id": self.webhook_id,
                "name": self.name,
                "uri": self.uri,
                "subscribed_events": list(self.subscribed_events),
                "state": self.state,
                "signing_secrets": [secret.as_json() for secret in self.signing_secrets if secret.valid(now)],
                "new_signing_secret": new_secret,
                "create_time": timestamp(self.create_ns),
                "update_time": timestamp(self.update_ns or self.create_ns),
            }
        )


class WebhookStore:
    """The project's webhooks, oldest first."""

    def __init__(self) -> None:
        self._webhooks: dict[str, Webhook] = {}

    def reset(self) -> None:
        """Forget every webhook."""
        self._webhooks.clear()

    def create(self, body: dict[str, Any], webhook_id: str | None) -> tuple[Webhook, str]:
        """Register a webhook from a create body; return it and its (only ever shown) secret."""
        if webhook_id is None:
            webhook_id = new_resource_id(12)
        if webhook_id in self._webhooks:
            raise ApiError(409, f"Webhook {webhook_id} already exists.")
        webhook = Webhook(
            webhook_id,
            uri=check_uri(_read(body, "uri"), "uri"),
            subscribed_events=_events(_read(body, "subscribed_events")),
            name=_name(body),
        )
        secret = webhook.rotate("revoke_previous_secrets_immediately")
        webhook.update_ns = 0
        self._webhooks[webhook_id] = webhook
        return webhook, secret

    def get(self, webhook_id: str) -> Webhook:
        """The webhook ``{id}`` (or ``webhooks/{id}``); 404 otherwise."""
        webhook = self._webhooks.get(webhook_id.removeprefix("webhooks/"))
        if webhook is None:
            raise not_found(f"Webhook {webhook_id.removeprefix('webhooks/')[:60]} not found.")
        return webhook

    def delete(self, webhook_id: str) -> None:
        """Remove a webhook; 404 if there is none."""
        del self._webhooks[self.get(webhook_id).webhook_id]

    def oldest_first(self) -> list[Webhook]:
        """Every webhook, in creation order."""
        return list(self._webhooks.values())

    def update(self, webhook_id: str, body: dict[str, Any], update_mask: str | None) -> Webhook:
        """Apply a PATCH: the fields named in ``update_mask``, or else those present in the body."""
        webhook = self.get(webhook_id)
        if update_mask:
            fields = [camel_to_snake(field.strip()) for field in update_mask.split(",") if field.strip()]
        else:
            fields = [field for field in _UPDATABLE if _read(body, field) is not None]
        unknown = sorted(set(fields) - set(_UPDATABLE))
        if unknown:
            raise invalid_argument(f"update_mask names fields that cannot be updated: {unknown}; use {_UPDATABLE}.")
        changes: dict[str, Any] = {}
        for field in fields:
            value = _read(body, field)
            if field == "uri":
                changes["uri"] = check_uri(value, "uri")
            elif field == "subscribed_events":
                changes["subscribed_events"] = _events(value)
            elif field == "state":
                if value not in _STATES:
                    raise invalid_argument(f"state must be one of {list(_STATES)}, got {str(value)[:40]!r}.")
                changes["state"] = value
            else:
                changes["name"] = _name(body)
        for field, value in changes.items():
            setattr(webhook, field, value)
        webhook.update_ns = time.time_ns()
        return webhook


def revocation_behavior(body: dict[str, Any]) -> str:
    """Read ``revocation_behavior`` (default: previous secrets stay valid for 24 hours)."""
    value = _read(body, "revocation_behavior") or "revoke_previous_secrets_after_h24"
    if value not in _REVOCATIONS:
        raise invalid_argument(f"revocation_behavior must be one of {sorted(_REVOCATIONS)}, got {str(value)[:60]!r}.")
    return str(value)


def _read(body: dict[str, Any], snake_name: str) -> Any:
    """Read a field sent in snake_case or camelCase."""
    if snake_name in body:
        return body[snake_name]
    head, *rest = snake_name.split("_")
    return body.get(head + "".join(part.title() for part in rest))


def _name(body: dict[str, Any]) -> str | None:
    name = _read(body, "name")
    if name is None:
        name = _read(body, "display_name")
    if name is not None and not isinstance(name, str):
        raise invalid_argument("name must be a string.")
    return name or None


def _events(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise invalid_argument(f"subscribed_events must be a non-empty list, one of {sorted(WEBHOOK_EVENTS)}.")
    unknown = [event for event in value if event not in WEBHOOK_EVENTS]
    if unknown:
        raise invalid_argument(f"Unknown subscribed_events {unknown[:5]}: use {sorted(WEBHOOK_EVENTS)}.")
    return list(dict.fromkeys(value))
