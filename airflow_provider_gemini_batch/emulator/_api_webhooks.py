"""The Webhooks API: create, list, get, update, delete, ping, rotate the secret (docs/protocol.md "Webhooks")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_gemini_batch.emulator._errors import invalid_argument
from airflow_provider_gemini_batch.emulator._requests import api_version, page_parameters, read_json
from airflow_provider_gemini_batch.emulator._responses import json_response
from airflow_provider_gemini_batch.emulator._state import emulator_state
from airflow_provider_gemini_batch.emulator._webhooks import revocation_behavior
from airflow_provider_gemini_batch.emulator._wire import is_resource_id, omit_empty, paginate

__all__ = ["webhook_routes"]

_BODY_LIMIT = 64 * 1024


async def create_webhook(request: Request) -> Response:
    """``POST /{version}/webhooks[?webhook_id=]`` → the Webhook, with its ``new_signing_secret`` (only here)."""
    api_version(request)
    query = request.query_params
    webhook_id = query.get("webhook_id") or query.get("webhookId")
    if webhook_id is not None and not is_resource_id(webhook_id):
        raise invalid_argument(f"webhook_id must be 1-40 characters of [a-z0-9-], got {webhook_id[:60]!r}.")
    body = await read_json(request, limit=_BODY_LIMIT)
    webhook, secret = emulator_state(request).webhooks.create(body, webhook_id)
    return json_response(webhook.as_json(new_secret=secret))


async def list_webhooks(request: Request) -> Response:
    """``GET /{version}/webhooks`` → ``{"webhooks": [...], "next_page_token"}`` (``{}`` when there are none)."""
    api_version(request)
    page_size, page_token = page_parameters(request)
    try:
        page, next_token = paginate(
            emulator_state(request).webhooks.oldest_first(),
            page_size=page_size,
            page_token=page_token,
            default_size=50,
            max_size=1000,
        )
    except ValueError as error:
        raise invalid_argument(str(error)) from error
    listing = [webhook.as_json() for webhook in page]
    return json_response(omit_empty({"webhooks": listing, "next_page_token": next_token}))


async def get_webhook(request: Request) -> Response:
    """``GET /{version}/webhooks/{id}`` → the Webhook (never its secret)."""
    api_version(request)
    return json_response(emulator_state(request).webhooks.get(request.path_params["webhook_id"]).as_json())


async def update_webhook(request: Request) -> Response:
    """``PATCH /{version}/webhooks/{id}[?update_mask=uri,subscribed_events]`` → the Webhook."""
    api_version(request)
    query = request.query_params
    update_mask = query.get("update_mask") or query.get("updateMask")
    body = await read_json(request, limit=_BODY_LIMIT)
    webhook = emulator_state(request).webhooks.update(request.path_params["webhook_id"], body, update_mask)
    return json_response(webhook.as_json())


async def delete_webhook(request: Request) -> Response:
    """``DELETE /{version}/webhooks/{id}`` → ``{}``."""
    api_version(request)
    emulator_state(request).webhooks.delete(request.path_params["webhook_id"])
    return json_response({})


async def ping_webhook(request: Request) -> Response:
    """``POST /{version}/webhooks/{id}:ping`` → ``{}``; the ping event is delivered in the background."""
    api_version(request)
    state = emulator_state(request)
    webhook = state.webhooks.get(request.path_params["webhook_id"])
    await read_json(request, limit=_BODY_LIMIT)
    state.courier.ping(webhook)
    return json_response({})


async def rotate_signing_secret(request: Request) -> Response:
    """``POST /{version}/webhooks/{id}:rotateSigningSecret`` → ``{"secret": "whsec_..."}``, the only time it shows."""
    api_version(request)
    webhook = emulator_state(request).webhooks.get(request.path_params["webhook_id"])
    revocation = revocation_behavior(await read_json(request, limit=_BODY_LIMIT))
    return json_response({"secret": webhook.rotate(revocation)})


def webhook_routes() -> list[Route]:
    """Routes of the Webhooks API (the ``:verb`` routes before ``webhooks/{id}`` on purpose)."""
    return [
        Route("/{version}/webhooks", create_webhook, methods=["POST"]),
        Route("/{version}/webhooks", list_webhooks, methods=["GET"]),
        Route("/{version}/webhooks/{webhook_id}:ping", ping_webhook, methods=["POST"]),
        Route("/{version}/webhooks/{webhook_id}:rotateSigningSecret", rotate_signing_secret, methods=["POST"]),
        Route("/{version}/webhooks/{webhook_id}", get_webhook, methods=["GET"]),
        Route("/{version}/webhooks/{webhook_id}", update_webhook, methods=["PATCH"]),
        Route("/{version}/webhooks/{webhook_id}", delete_webhook, methods=["DELETE"]),
    ]
