"""``POST /webhooks/{conn_id}``: a signed batch completion from the Gemini API becomes an asset event.

The one unauthenticated route of the provider: it trusts nothing but a Standard Webhooks signature
made with the connection's ``webhook_secret`` (docs/webhooks.md). In order, before anything of the
body is parsed:

1. the body is read up to ``WEBHOOK_MAX_BODY_BYTES`` (413 past it);
2. the ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers must be present, the
   timestamp within 5 minutes of now (a replay is refused), a ``v1,`` signature among them, and the
   ``conn_id`` shaped like a connection id: all checked before the connection is looked up, so an
   unsigned caller cannot make the api-server query its secrets backends;
3. the connection must be of type ``gemini`` and one signature must match one of its secrets.

Every refusal is the same 401 (an unknown connection, or one without a secret, is answered exactly
like a bad signature, so the route does not tell which connections exist); the reason is logged.

Then the event is parsed, a type other than a batch completion is acknowledged and ignored, and a
completion is recorded once (``_recording``). Every answer to a verified delivery is a 2xx, an
unreadable one included (logged as an error): the service retries a non-2xx for a day and then
disables the webhook, and a resend cannot make a signed body readable.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_gemini_batch.assets import EVENT_TYPES, CompletedBatch
from airflow_provider_gemini_batch.plugins._recording import Outcome, record_completion
from airflow_provider_gemini_batch.settings import WEBHOOK_MAX_BODY_BYTES

__all__ = ["completion_from_event", "router"]

log = logging.getLogger(__name__)

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
#: The longest ``webhook-id`` and job name accepted: each becomes part of a state store key (512 characters at most).
MAX_KEY_PART_LENGTH = 256
#: What every refused signature is answered, whatever the reason (the reason is logged).
REFUSED = "webhook signature verification failed"
#: Seconds a delivery's timestamp may be off now, as ``standardwebhooks`` checks it (a replay is refused).
TOLERANCE_SECONDS = 5 * 60
#: What a connection id can look like (Airflow allows letters, digits, ``_``, ``-`` and ``.``).
_CONN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")

router = APIRouter()

#: Starlette renamed 413 in 0.48 (Airflow 3.0 has 0.47) and warns on the old name; the number is the same.
_CONTENT_TOO_LARGE = 413


class MalformedEvent(ValueError):
    """A verified delivery whose body is not a batch event this receiver can read."""


@router.post("/webhooks/{conn_id}")
async def receive_webhook(conn_id: str, request: Request) -> JSONResponse:
    """Verify a delivery, then record the batch completion it announces on the connection's asset."""
    body = await _read_body(request, WEBHOOK_MAX_BODY_BYTES)
    headers = {name: request.headers.get(name, "") for name in SIGNATURE_HEADERS}
    shown_conn_id = conn_id[:100]
    if not all(headers.values()):
        log.warning("Gemini webhook for connection %r refused: missing Standard Webhooks headers", shown_conn_id)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing webhook-id, webhook-timestamp or webhook-signature")
    refusal = _unverifiable(conn_id, headers)
    if refusal is None:
        secrets = await run_in_threadpool(_webhook_secrets, conn_id)
        refusal = _refusal(body, headers, secrets)
    if refusal is not None:
        log.warning(
            "Gemini webhook %r for connection %r refused: %s", headers["webhook-id"][:100], shown_conn_id, refusal
        )
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, REFUSED)

    webhook_id = headers["webhook-id"]
    try:
        completed = completion_from_event(_parse(body), webhook_id)
    except MalformedEvent as error:
        log.error(
            "Gemini webhook %r for connection %r is signed but unreadable (%s); nothing recorded. The safety net "
            "(GeminiBatchCompletedTrigger) still announces the job.",
            webhook_id,
            conn_id,
            error,
        )
        return _answer("unreadable", f"the event is signed but unreadable ({error}); nothing recorded")
    if completed is None:
        log.info("Gemini webhook %r for connection %r is not a batch completion: ignored", webhook_id, conn_id)
        return _answer("ignored", "the event is not a batch completion; nothing recorded")

    outcome = await run_in_threadpool(record_completion, conn_id, completed)
    if outcome is Outcome.NO_ASSET:
        log.warning(
            "Gemini webhook %r: %s ended %s, but no DAG is scheduled on gemini_batch_completed(%r); nothing recorded",
            webhook_id,
            completed.batch,
            completed.state,
            conn_id,
        )
        return _answer(outcome.value, "no DAG is scheduled on this connection's completion asset; nothing recorded")
    if outcome is Outcome.DUPLICATE:
        log.info("Gemini webhook %r: %s was already announced; nothing recorded", webhook_id, completed.batch)
        return _answer(outcome.value, "this delivery or this job was already recorded")
    log.info("Gemini webhook %r: %s ended %s; asset event recorded", webhook_id, completed.batch, completed.state)
    return _answer(outcome.value, f"{completed.batch} recorded")


def completion_from_event(event: Any, webhook_id: str) -> CompletedBatch | None:
    """Read a verified event; ``None`` for an event that is not a batch completion (a ping, say).

    :raises MalformedEvent: the event is not an object with a ``type``, or a completion without
        ``data.id``.
    """
    if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
        raise MalformedEvent("expected a JSON object with a string 'type'")
    state = EVENT_TYPES.get(event["type"])
    if state is None:
        return None
    data = event.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data["id"]:
        raise MalformedEvent("a batch event needs 'data.id', the job's name")
    batch = data["id"] if data["id"].startswith("batches/") else f"batches/{data['id']}"
    for name, value in (("webhook-id", webhook_id), ("data.id", batch)):
        if len(value) > MAX_KEY_PART_LENGTH:
            raise MalformedEvent(f"{name} is longer than {MAX_KEY_PART_LENGTH} characters")
    metadata = data.get("user_metadata")
    return CompletedBatch(
        batch=batch,
        state=state.value,
        results_file=_text(data.get("output_file_uri")) or _text(data.get("file_name")),
        user_metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
        source="webhook",
        webhook_id=webhook_id,
        error=_text(data.get("error_message")) or _error_code(data.get("error_code")),
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes of the body; 413 as soon as it is known to be longer."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(_CONTENT_TOO_LARGE, f"the body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(_CONTENT_TOO_LARGE, f"the body is over {limit} bytes")
    return bytes(body)


def _unverifiable(conn_id: str, headers: Mapping[str, str]) -> str | None:
    """Why a delivery cannot verify whatever the secret, or ``None``: checks that need no connection."""
    if not _CONN_ID.match(conn_id):
        return "the path does not name a connection id"
    try:
        sent = float(headers["webhook-timestamp"])
    except ValueError:
        return "webhook-timestamp is not a number"
    if not math.isfinite(sent) or abs(time.time() - sent) > TOLERANCE_SECONDS:
        return f"webhook-timestamp is more than {TOLERANCE_SECONDS} s from now (a replay, or a clock far off)"
    if not any(part.startswith("v1,") for part in headers["webhook-signature"].split(" ")):
        return "webhook-signature has no v1 signature"
    return None


def _webhook_secrets(conn_id: str) -> list[str]:
    """The connection's signing secrets (two during a rotation); none for an unknown connection."""
    from airflow.models.connection import Connection
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        log.warning("Gemini webhook for connection %r: no such connection", conn_id[:100])
        return []
    if conn.conn_type != "gemini":
        log.warning(
            "Gemini webhook for connection %r: the connection is of type %r, not gemini", conn_id, conn.conn_type
        )
        return []
    value = conn.extra_dejson.get("webhook_secret")
    secrets = value.split() if isinstance(value, str) else []
    if not secrets:
        log.warning("Gemini webhook for connection %r: the connection has no extra 'webhook_secret'", conn_id)
    return secrets


def _refusal(body: bytes, headers: dict[str, str], secrets: list[str]) -> str | None:
    """Why the delivery is refused, or ``None`` when one secret verifies it. Never names a secret."""
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    if not secrets:
        return "no signing secret for this connection"
    reason = "no secret of the connection's 'webhook_secret' is usable"
    for position, secret in enumerate(secrets, start=1):
        try:
            verifier = Webhook(secret)
        except Exception:  # A malformed secret; its text, and so the exception's, must not be logged.
            log.warning(
                "Gemini webhook: secret %d of the connection's 'webhook_secret' is not a whsec_ secret", position
            )
            continue
        try:
            verifier.verify(body, headers, json_parse=False)
        except WebhookVerificationError as error:  # The library's fixed messages: old, new, no match.
            reason = str(error)
        except (ValueError, UnicodeDecodeError) as error:  # Malformed headers or body (binascii.Error included).
            reason = f"malformed delivery ({type(error).__name__})"
        else:
            return None
    return reason


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise MalformedEvent("the body is not JSON") from None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_code(code: Any) -> str | None:
    return None if code in (None, "", 0) else f"error code {code}"


def _answer(outcome: str, detail: str) -> JSONResponse:
    return JSONResponse({"status": outcome, "detail": detail})
