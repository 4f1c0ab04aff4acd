"""The Batches API: create (generate / embed), get, list, cancel, delete (docs/protocol.md "Batches").

Creating is not idempotent, as on the live service: every create makes a new job.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_gemini_batch.emulator._errors import ApiError, invalid_argument, model_not_found
from airflow_provider_gemini_batch.emulator._jobs import Job, JobStore, render_operation
from airflow_provider_gemini_batch.emulator._quota import admit, estimate_file_tokens, estimate_inline_tokens
from airflow_provider_gemini_batch.emulator._requests import api_version, page_parameters, read_json
from airflow_provider_gemini_batch.emulator._responses import BrokenReply, json_response
from airflow_provider_gemini_batch.emulator._results import count_file_requests, count_inline_failures, settle
from airflow_provider_gemini_batch.emulator._state import EmulatorState, emulator_state
from airflow_provider_gemini_batch.emulator._webhooks import check_uri
from airflow_provider_gemini_batch.emulator._wire import omit_empty, paginate, read_field

__all__ = ["batch_routes"]

#: Inline requests must stay under 20 MB in total (docs/protocol.md "Create body").
INLINE_REQUEST_LIMIT = 20 * 1024 * 1024


async def create_generation_batch(request: Request) -> Response:
    """``POST /{version}/models/{model}:batchGenerateContent``."""
    return await _create(request, embedding=False)


async def create_embedding_batch(request: Request) -> Response:
    """``POST /{version}/models/{model}:asyncBatchEmbedContent``."""
    return await _create(request, embedding=True)


async def _create(request: Request, *, embedding: bool) -> Response:
    version = api_version(request)
    state = emulator_state(request)
    collection = request.url.path.split("/")[2]  # "models" or "tunedModels"
    model = f"{collection}/{request.path_params['model']}"
    known_models = state.config.embedding_models if embedding else state.config.generation_models
    if model not in known_models:
        raise model_not_found(model, version, "asyncBatchEmbedContent" if embedding else "batchGenerateContent")
    body = await read_json(request, limit=INLINE_REQUEST_LIMIT)
    batch = read_field(body, "batch")
    if not isinstance(batch, dict):
        raise invalid_argument('batch is required: send {"batch": {"inputConfig": {...}}}.')
    hold = state.faults.take("hold_create", request.method, request.url.path)
    if hold is None:
        job = await _new_job(state, batch, model=model, embedding=embedding)
        _add(state, job)
    else:
        # Made in a task of its own, so the job appears even if the client hung up (or this request
        # was cancelled) meanwhile: a timed-out create may have made a paid job (docs/protocol.md "Batches").
        held = _held_job(state, hold.seconds, batch, model=model, embedding=embedding)
        job = await asyncio.shield(state.detach(held))
    state.courier.wake()
    if state.faults.take("drop_after_create", request.method, request.url.path):
        return BrokenReply()
    # The live service answers a create with the job still PENDING, however fast it will run.
    return json_response(render_operation(job.created_view()))


async def _held_job(state: EmulatorState, seconds: float, batch: dict[str, Any], *, model: str, embedding: bool) -> Job:
    """Wait ``seconds``, then make and store the job, unless the emulator was reset meanwhile."""
    generation = state.generation
    await asyncio.sleep(seconds)
    if state.generation != generation:
        raise ApiError(503, "The emulator was reset while this create was held: no job was made.")
    job = await _new_job(state, batch, model=model, embedding=embedding)
    _add(state, job)
    return job


def _add(state: EmulatorState, job: Job) -> None:
    """Store ``job``, unless quota refuses it (429): then no job exists, and its input link goes."""
    try:
        admit(state.jobs, job)
    except ApiError:
        if job.input_path is not None:
            job.input_path.unlink(missing_ok=True)
        raise
    state.jobs.add(job)


async def _new_job(state: EmulatorState, batch: dict[str, Any], *, model: str, embedding: bool) -> Job:
    """Validate the batch and build its job, counting requests (and future failures) up front."""
    input_config = read_field(batch, "inputConfig")
    file_name = read_field(input_config, "fileName")
    items = read_field(read_field(input_config, "requests"), "requests")
    if (file_name is None) == (items is None):
        raise invalid_argument("batch.input_config needs exactly one of file_name or requests.requests.")
    batch_id = JobStore.new_batch_id()
    job = Job(
        batch_id,
        model,
        embedding,
        state.config,
        request_count=0,
        failed_count=0,
        display_name=read_field(batch, "displayName"),
        priority=_priority(batch),
    )
    job.webhook_uris, job.webhook_metadata = _webhook_config(read_field(batch, "webhookConfig"))
    if items is not None:
        job.inline_requests = _inline_items(items)
        job.request_count = len(job.inline_requests)
        job.failed_count = count_inline_failures(job.inline_requests, embedding=embedding)
        job.estimated_tokens = estimate_inline_tokens(job.inline_requests)
    else:
        stored = state.files.get(str(file_name))
        stored.require_content()
        job.input_file_name = stored.name
        job.input_path = state.files.link_job_input(stored, batch_id)
        job.request_count, job.failed_count = await count_file_requests(job.input_path, embedding=embedding)
        job.estimated_tokens = await estimate_file_tokens(job.input_path)
    return job


def _inline_items(items: object) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not items:
        raise invalid_argument("batch.input_config.requests.requests must be a non-empty list.")
    for index, item in enumerate(items):
        # Unparseable items fail the create; an item without a request is an empty request, which
        # fails on its own in the results, like one without contents (docs/protocol.md, "SUCCEEDED
        # does not mean the requests succeeded").
        if not isinstance(item, dict) or not isinstance(item.get("request", {}), dict):
            raise invalid_argument(
                f"batch.input_config.requests.requests[{index}] must be an object with a 'request' object."
            )
    return items


def _webhook_config(config: object) -> tuple[list[str] | None, dict[str, Any] | None]:
    """Read ``batch.webhookConfig``: its ``uris`` (absolute http(s) URLs) and ``user_metadata``."""
    if config is None:
        return None, None
    if not isinstance(config, dict):
        raise invalid_argument('batch.webhook_config must be an object: {"uris": [...], "user_metadata": {...}}.')
    uris = read_field(config, "uris")
    if uris is not None and not isinstance(uris, list):
        raise invalid_argument("batch.webhook_config.uris must be a list of URLs.")
    checked = [check_uri(uri, "batch.webhook_config.uris[]") for uri in uris or []]
    metadata = read_field(config, "userMetadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid_argument("batch.webhook_config.user_metadata must be an object.")
    return checked or None, metadata or None


def _priority(batch: dict[str, Any]) -> int:
    raw = read_field(batch, "priority", 0)
    try:
        return int(raw)
    except (TypeError, ValueError) as error:
        raise invalid_argument(f"Invalid value at 'batch.priority' (TYPE_INT64), {str(raw)[:20]!r}") from error


async def get_batch(request: Request) -> Response:
    """``GET /{version}/batches/{id}`` → Operation, with results once SUCCEEDED."""
    api_version(request)
    state = emulator_state(request)
    job = state.jobs.get(request.path_params["batch_id"])
    return json_response(await _observe(state, job))


async def list_batches(request: Request) -> Response:
    """``GET /{version}/batches`` → ``{"operations": [...], "nextPageToken"}``, never inline results."""
    api_version(request)
    state = emulator_state(request)
    page_size, page_token = page_parameters(request)
    try:
        page, next_token = paginate(
            state.jobs.newest_first(), page_size=page_size, page_token=page_token, default_size=50, max_size=1000
        )
    except ValueError as error:
        raise invalid_argument(str(error)) from error
    operations = [await _observe(state, job, include_inline_results=False) for job in page]
    return json_response(omit_empty({"operations": operations, "nextPageToken": next_token}))


async def _observe(state: EmulatorState, job: Job, *, include_inline_results: bool = True) -> dict[str, Any]:
    """Render the job as it is now, computing its results first if it has just succeeded."""
    view = job.view(time.time_ns())
    await settle(job, state.files, view.state, state.caches)
    return render_operation(view, include_inline_results=include_inline_results)


async def cancel_batch(request: Request) -> Response:
    """``POST /{version}/batches/{id}:cancel`` → ``{}``; a finished job stays as it is."""
    api_version(request)
    state = emulator_state(request)
    job = state.jobs.get(request.path_params["batch_id"])
    if not job.view(time.time_ns()).terminal:
        job.force("CANCELLED")
        state.courier.wake()
    return json_response({})


async def delete_batch(request: Request) -> Response:
    """``DELETE /{version}/batches/{id}`` → ``{}``."""
    api_version(request)
    emulator_state(request).jobs.get(request.path_params["batch_id"]).deleted = True
    return json_response({})


def batch_routes() -> list[Route]:
    """Routes of the Batches API (``:cancel`` before ``batches/{id}`` on purpose)."""
    routes = [
        Route("/{version}/batches", list_batches, methods=["GET"]),
        Route("/{version}/batches/{batch_id}:cancel", cancel_batch, methods=["POST"]),
        Route("/{version}/batches/{batch_id}", get_batch, methods=["GET"]),
        Route("/{version}/batches/{batch_id}", delete_batch, methods=["DELETE"]),
    ]
    for collection in ("models", "tunedModels"):
        routes += [
            Route(
                f"/{{version}}/{collection}/{{model}}:batchGenerateContent", create_generation_batch, methods=["POST"]
            ),
            Route(
                f"/{{version}}/{collection}/{{model}}:asyncBatchEmbedContent", create_embedding_batch, methods=["POST"]
            ),
        ]
    return routes
