"""Request building and response parsing for every Gemini Batch / Files / Webhooks endpoint, written once.

The sync and async clients only differ in how they send an ``ApiCall``; everything about paths,
bodies and the shapes of replies lives here (see ``docs/protocol.md``). Names are validated before any I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx

from airflow_provider_gemini_batch.batch_input import inline_item
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.models import Batch, GeminiFile, RotatedSigningSecret, Webhook

T = TypeVar("T")

_RESOURCE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    """One API request, and how to read its reply.

    :param description: names the operation in error messages ("get batch batches/abc").
    :param retry_safe: whether resending after a lost reply is harmless. False for batch creates:
        the same create sent twice makes two paid jobs (``docs/protocol.md``, "Creating is not idempotent").
    :param retry_quota: whether a 429 is retried here. False for a create whose caller waits out
        quota itself (the submit operator defers: ``docs/protocol.md``, "Quota at create").
    """

    method: str
    path: str
    """Relative to ``{base_url}/{api_version}/``, or an absolute URL (upload sessions)."""
    parse: Callable[[httpx.Response], T]
    description: str
    json: Any = None
    params: Mapping[str, str | int] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_safe: bool = True
    retry_quota: bool = True


def model_path(model: str) -> str:
    """Normalise a model name to ``models/{id}`` (``tunedModels/...`` passes as is)."""
    model = (model or "").strip()
    if not model:
        raise GeminiBatchInputError("model is empty: pass a model name such as 'gemini-2.5-flash'.")
    prefix, _, model_id = model.rpartition("/")
    if prefix in ("", "models"):
        prefix = "models"
    elif prefix != "tunedModels":
        raise GeminiBatchInputError(
            f"model {model!r} is not a model name: use 'gemini-2.5-flash', 'models/...' or 'tunedModels/...'."
        )
    if ".." in model_id or not _MODEL_ID.match(model_id):
        raise GeminiBatchInputError(
            f"model {model!r} has characters a model name cannot have ('..', '?', '&', '/', spaces): "
            "use a name such as 'gemini-2.5-flash'."
        )
    return f"{prefix}/{model_id}"


_SINGULAR = {"batches": "batch", "files": "file", "webhooks": "webhook"}


def resource_name(name: str, collection: str) -> str:
    """Check that ``name`` is ``{collection}/{id}`` and return it stripped."""
    name = (name or "").strip() if isinstance(name, str) else name
    singular = _SINGULAR.get(collection, collection)
    if not isinstance(name, str) or not name:
        raise GeminiBatchInputError(f"The {singular} name is empty: pass '{collection}/<id>'.")
    prefix, _, resource_id = name.partition("/")
    if prefix != collection or not _RESOURCE_ID.match(resource_id):
        raise GeminiBatchInputError(
            f"{name!r} is not a {singular} name: expected '{collection}/<id>' "
            f"(letters, digits, '-' and '_' after the prefix)."
        )
    return name


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    body = response.json()
    return body if isinstance(body, dict) else {}


def _parse_batch(response: httpx.Response) -> Batch:
    return Batch.model_validate(_json(response))


def _parse_file(response: httpx.Response) -> GeminiFile:
    body = _json(response)
    # The upload finalize reply wraps the File in {"file": ...}; get returns it bare.
    return GeminiFile.model_validate(body.get("file", body))


def _parse_nothing(response: httpx.Response) -> None:
    return None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list reply."""

    items: list[T]
    next_page_token: str | None


def _page_parser(key: str, parse_item: Callable[[Any], T]) -> Callable[[httpx.Response], Page[T]]:
    def parse(response: httpx.Response) -> Page[T]:
        body = _json(response)  # An empty list comes back as {} (proto3 omits empty fields).
        # The webhooks service answers in snake_case, as the official SDK reads it (next_page_token).
        token = body.get("nextPageToken") or body.get("next_page_token") or None
        return Page([parse_item(item) for item in body.get(key) or []], token)

    return parse


def get_batch(name: str) -> ApiCall[Batch]:
    name = resource_name(name, "batches")
    return ApiCall("GET", name, _parse_batch, f"get batch {name}")


def cancel_batch(name: str) -> ApiCall[None]:
    name = resource_name(name, "batches")
    # The docs' curl without -X POST is a doc bug: cancel is a POST with an empty body.
    return ApiCall("POST", f"{name}:cancel", _parse_nothing, f"cancel batch {name}")


def delete_batch(name: str) -> ApiCall[None]:
    name = resource_name(name, "batches")
    return ApiCall("DELETE", name, _parse_nothing, f"delete batch {name}")


def list_batches(page_size: int | None, page_token: str | None) -> ApiCall[Page[Batch]]:
    return ApiCall(
        "GET",
        "batches",
        _page_parser("operations", Batch.model_validate),
        "list batches",
        params=_page_params(page_size, page_token),
    )


def get_file(name: str) -> ApiCall[GeminiFile]:
    name = resource_name(name, "files")
    return ApiCall("GET", name, _parse_file, f"get file {name}")


def delete_file(name: str) -> ApiCall[None]:
    name = resource_name(name, "files")
    return ApiCall("DELETE", name, _parse_nothing, f"delete file {name}")


def list_files(page_size: int | None, page_token: str | None) -> ApiCall[Page[GeminiFile]]:
    return ApiCall(
        "GET",
        "files",
        _page_parser("files", GeminiFile.model_validate),
        "list files",
        params=_page_params(page_size, page_token),
    )


# -- webhooks (docs/protocol.md "Webhooks"; bodies in snake_case, as the official SDK sends them) ----

#: The most webhooks one list page holds.
MAX_WEBHOOK_PAGE_SIZE = 1000
RevokePrevious = Literal["after_24h", "immediately"]
_REVOCATION_BEHAVIOUR: dict[str, str] = {
    "after_24h": "revoke_previous_secrets_after_h24",
    "immediately": "revoke_previous_secrets_immediately",
}


def webhook_uri(uri: Any, what: str = "uri") -> str:
    """Check that ``uri`` is an absolute http(s) URL (where the service can POST) and return it stripped.

    :param what: how the argument is named in the error ("webhook_uris[1]").
    """
    text = uri.strip() if isinstance(uri, str) else ""
    if not text:
        raise GeminiBatchInputError(
            f"{what} is empty: pass the absolute URL the service should POST to, "
            "e.g. 'https://airflow.example.com/gemini-batch/webhooks/gemini_default'."
        )
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL:
        parsed = httpx.URL("")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise GeminiBatchInputError(
            f"{what} {text!r} is not an absolute http(s) URL: give the full address the service can reach, "
            "with scheme and host, e.g. 'https://airflow.example.com/gemini-batch/webhooks/gemini_default'."
        )
    return text


def _events(subscribed_events: Any) -> list[str]:
    if isinstance(subscribed_events, str) or not isinstance(subscribed_events, Sequence):
        raise GeminiBatchInputError(
            f"subscribed_events must be a list of event names such as ['batch.succeeded'], got {subscribed_events!r}."
        )
    events = list(subscribed_events)
    if not events:
        raise GeminiBatchInputError(
            "subscribed_events is empty: a webhook needs at least one event, e.g. 'batch.succeeded'."
        )
    bad = [event for event in events if not isinstance(event, str) or not event.strip()]
    if bad:
        raise GeminiBatchInputError(f"subscribed_events holds {bad!r}: each event is a name such as 'batch.succeeded'.")
    return [event.strip() for event in events]


def webhook_config(uris: Sequence[str] | str | None, user_metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A job's ``webhookConfig``: ``{"uris": [...], "user_metadata": {...}}`` (the wire's names), checked."""
    config: dict[str, Any] = {}
    if isinstance(uris, str):
        uris = [uris]
    if uris is not None:
        if not isinstance(uris, Sequence):
            raise GeminiBatchInputError(f"webhook_uris must be a list of URLs, got a {type(uris).__name__}.")
        if uris:
            config["uris"] = [webhook_uri(uri, f"webhook_uris[{index}]") for index, uri in enumerate(uris)]
    if user_metadata is not None:
        if not isinstance(user_metadata, Mapping):
            raise GeminiBatchInputError(
                f"webhook_metadata must be a dict of JSON values, got a {type(user_metadata).__name__}."
            )
        for key, value in user_metadata.items():
            try:
                json.dumps({key: value}, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise GeminiBatchInputError(
                    f"webhook_metadata[{key!r}] is not JSON ({type(value).__name__}): use strings, numbers, "
                    "booleans, lists and dicts."
                ) from exc
            if not isinstance(key, str):
                raise GeminiBatchInputError(f"webhook_metadata key {key!r} is not a string: JSON keys are strings.")
        config["user_metadata"] = dict(user_metadata)
    return config


def _parse_webhook(response: httpx.Response) -> Webhook:
    return Webhook.model_validate(_json(response))


def create_webhook(
    uri: str, *, subscribed_events: Sequence[str], display_name: str | None, webhook_id: str | None
) -> ApiCall[Webhook]:
    """Build a webhook create; its reply carries the signing secret, once.

    Only a create with a ``webhook_id`` is safe to resend (a second one that lands answers 409
    ALREADY_EXISTS); without one, a resent create could make a second webhook.
    """
    body: dict[str, Any] = {"uri": webhook_uri(uri), "subscribed_events": _events(subscribed_events)}
    if display_name:
        body["name"] = display_name  # The SDK's user-given name; the resource name is webhooks/{id}.
    params: dict[str, str | int] = {}
    if webhook_id is not None:
        if not isinstance(webhook_id, str) or not _RESOURCE_ID.match(webhook_id):
            raise GeminiBatchInputError(
                f"webhook_id {webhook_id!r} is not an id: use letters, digits, '-' and '_' (the name becomes "
                "'webhooks/<webhook_id>')."
            )
        params["webhook_id"] = webhook_id
    return ApiCall(
        "POST",
        "webhooks",
        _parse_webhook,
        f"create webhook{' ' + str(params['webhook_id']) if params else ''}",
        json=body,
        params=params,
        retry_safe=webhook_id is not None,
    )


def get_webhook(name: str) -> ApiCall[Webhook]:
    name = resource_name(name, "webhooks")
    return ApiCall("GET", name, _parse_webhook, f"get webhook {name}")


def list_webhooks(page_size: int | None, page_token: str | None) -> ApiCall[Page[Webhook]]:
    if page_size is not None and not 1 <= page_size <= MAX_WEBHOOK_PAGE_SIZE:
        raise GeminiBatchInputError(
            f"page_size {page_size} is out of range: the service returns 1 to {MAX_WEBHOOK_PAGE_SIZE} webhooks a page."
        )
    return ApiCall(
        "GET",
        "webhooks",
        _page_parser("webhooks", Webhook.model_validate),
        "list webhooks",
        params=_page_params(page_size, page_token),
    )


def update_webhook(name: str, *, uri: str | None, subscribed_events: Sequence[str] | None) -> ApiCall[Webhook]:
    name = resource_name(name, "webhooks")
    body: dict[str, Any] = {}
    if uri is not None:
        body["uri"] = webhook_uri(uri)
    if subscribed_events is not None:
        body["subscribed_events"] = _events(subscribed_events)
    if not body:
        raise GeminiBatchInputError(f"Webhook {name}: nothing to update; pass uri, subscribed_events or both.")
    return ApiCall(
        "PATCH", name, _parse_webhook, f"update webhook {name}", json=body, params={"update_mask": ",".join(body)}
    )


def delete_webhook(name: str) -> ApiCall[None]:
    name = resource_name(name, "webhooks")
    return ApiCall("DELETE", name, _parse_nothing, f"delete webhook {name}")


def ping_webhook(name: str) -> ApiCall[None]:
    name = resource_name(name, "webhooks")
    return ApiCall("POST", f"{name}:ping", _parse_nothing, f"ping webhook {name}")


def rotate_webhook_signing_secret(name: str, *, revoke_previous: RevokePrevious) -> ApiCall[RotatedSigningSecret]:
    name = resource_name(name, "webhooks")
    behaviour = _REVOCATION_BEHAVIOUR.get(revoke_previous)
    if behaviour is None:
        raise GeminiBatchInputError(
            f"revoke_previous {revoke_previous!r} is not one of {sorted(_REVOCATION_BEHAVIOUR)}: 'after_24h' keeps "
            "the old secret valid for a day (time to update the receiver), 'immediately' revokes it now."
        )
    return ApiCall(
        "POST",
        f"{name}:rotateSigningSecret",
        lambda response: RotatedSigningSecret.model_validate(_json(response)),
        f"rotate the signing secret of webhook {name}",
        # Resending is safe: a secret whose reply was lost is known to no one, and the next one replaces it.
        json={"revocation_behavior": behaviour},
    )


def _page_params(page_size: int | None, page_token: str | None) -> dict[str, str | int]:
    params: dict[str, str | int] = {}
    if page_size:
        params["pageSize"] = page_size
    if page_token:
        params["pageToken"] = page_token
    return params


def create_batch(
    model: str,
    *,
    requests: Sequence[Mapping[str, Any]] | None,
    input_file: str | None,
    display_name: str | None,
    embeddings: bool,
    extra_batch_fields: Mapping[str, Any] | None = None,
    retry_quota: bool = True,
) -> ApiCall[Batch]:
    """Build a ``batchGenerateContent`` / ``asyncBatchEmbedContent`` create call.

    :param requests: inline items; each either ``{"request": {...}, "metadata": {...}}``, or
        ``{"key": ..., "request": {...}}`` (the JSONL shape), or a bare request body.
    """
    path = model_path(model)
    if (requests is None) == (input_file is None):
        raise GeminiBatchInputError("Pass exactly one of requests (inline) or input_file ('files/...').")
    input_config: dict[str, Any]
    if input_file is not None:
        input_config = {"fileName": resource_name(input_file, "files")}
    else:
        assert requests is not None
        if not requests:
            raise GeminiBatchInputError("requests is empty: a batch needs at least one request.")
        input_config = {"requests": {"requests": [inline_item(item, index) for index, item in enumerate(requests)]}}
    batch: dict[str, Any] = {"inputConfig": input_config}
    if display_name:
        batch["displayName"] = display_name
    batch.update(extra_batch_fields or {})
    verb = "asyncBatchEmbedContent" if embeddings else "batchGenerateContent"
    return ApiCall(
        "POST",
        f"{path}:{verb}",
        _parse_batch,
        f"create {'embeddings ' if embeddings else ''}batch on {path}",
        json={"batch": batch},
        retry_safe=False,
        retry_quota=retry_quota,
    )


def pages(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Yield every item of a listing, fetching page after page (``fetch(page_token)``)."""
    token: str | None = None
    while True:
        page = fetch(token)
        yield from page.items
        token = page.next_page_token
        if not token:
            return


async def apages(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """The async twin of :func:`pages`: every item of a listing, page after page."""
    token: str | None = None
    while True:
        page = await fetch(token)
        for item in page.items:
            yield item
        token = page.next_page_token
        if not token:
            return
