"""Request building and response parsing for every Gemini Batch / Files endpoint, written once.

The sync and async clients only differ in how they send an ``ApiCall``; everything about paths,
bodies and the shapes of replies lives here (see ``docs/protocol.md``). Names are validated before any I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from airflow_provider_gemini_batch.batch_input import inline_item
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.models import Batch, GeminiFile

T = TypeVar("T")

_RESOURCE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    """One API request, and how to read its reply.

    :param description: names the operation in error messages ("get batch batches/abc").
    :param retry_safe: whether resending after a lost reply is harmless. False for batch creates:
        the same create sent twice makes two paid jobs (``docs/protocol.md``, "Creating is not idempotent").
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


_SINGULAR = {"batches": "batch", "files": "file"}


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
        return Page([parse_item(item) for item in body.get(key) or []], body.get("nextPageToken") or None)

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
