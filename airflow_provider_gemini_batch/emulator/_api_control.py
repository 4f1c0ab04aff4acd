"""The control API under ``/_emulator/``: what tests use to steer and inspect the emulator.

It needs no API key, is not logged and is not subject to injected faults. Bad input gets a 400 in
the service's error shape. :class:`~airflow_provider_gemini_batch.emulator.EmulatorControl` wraps
every endpoint.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_gemini_batch.emulator._config import normalize_state
from airflow_provider_gemini_batch.emulator._errors import invalid_argument
from airflow_provider_gemini_batch.emulator._faults import FaultRule
from airflow_provider_gemini_batch.emulator._requests import read_json
from airflow_provider_gemini_batch.emulator._responses import STREAM_BLOCK_SIZE, json_response
from airflow_provider_gemini_batch.emulator._state import emulator_state

__all__ = ["control_routes"]

_CONTROL_BODY_LIMIT = 1024 * 1024
A = TypeVar("A")
R = TypeVar("R")


async def reset(request: Request) -> Response:
    """Forget jobs, files, webhooks, deliveries, faults and the request log; restore the start-up configuration."""
    emulator_state(request).reset()
    return json_response({})


async def config(request: Request) -> Response:
    """Return the configuration; on POST, merge the body into it first."""
    state = emulator_state(request)
    if request.method == "POST":
        state.config = _or_400(state.config.merged, await read_json(request, limit=_CONTROL_BODY_LIMIT))
    return json_response(state.config.as_dict())


async def set_state(request: Request) -> Response:
    """Force a job into a state now: ``{"state": "FAILED", "message": "optional"}``.

    Unknown state names are accepted and shown as non-terminal, to test how clients cope.
    """
    body = await read_json(request, limit=_CONTROL_BODY_LIMIT)
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise invalid_argument("message must be a string.")
    emulator = emulator_state(request)
    job = emulator.jobs.get(request.path_params["batch_id"])
    state = _or_400(functools.partial(normalize_state, allow_unknown=True), body.get("state"))
    job.force(state, message)
    emulator.courier.wake()
    return json_response({"name": job.name, "state": "BATCH_STATE_" + state})


async def batches(request: Request) -> Response:
    """Every job ever created since the last reset, deleted ones included, oldest first."""
    jobs = emulator_state(request).jobs
    now = time.time_ns()
    listing = [
        {
            "name": job.name,
            "state": "BATCH_STATE_" + job.view(now).state,
            "displayName": job.display_name,
            "model": job.model,
            "deleted": job.deleted,
        }
        for job in reversed(jobs.newest_first(include_deleted=True))
    ]
    return json_response({"batches": listing, "createdCount": jobs.created_count})


async def requests(request: Request) -> Response:
    """The API request log: method, path, status (0 for a dropped connection) and time."""
    return json_response(emulator_state(request).request_log)


async def request_counts(request: Request) -> Response:
    """How many API requests each ``METHOD path`` received since the last reset."""
    return json_response(emulator_state(request).request_counts())


async def webhook_deliveries(request: Request) -> Response:
    """Every webhook delivery since the last reset: event, URL, attempts and outcome."""
    return json_response({"deliveries": emulator_state(request).courier.as_json()})


async def file_sha256(request: Request) -> Response:
    """SHA-256 (hex) and size of a stored file's bytes, to check an upload arrived intact."""
    stored = emulator_state(request).files.get(request.path_params["file_id"])
    stored.require_content()
    digest = await anyio.to_thread.run_sync(_sha256_hex, stored.path)
    return json_response({"sha256": digest, "sizeBytes": stored.size})


def _sha256_hex(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(STREAM_BLOCK_SIZE):
            hasher.update(block)
    return hasher.hexdigest()


async def faults(request: Request) -> Response:
    """POST appends a fault rule, DELETE clears them all; both return the pending rules."""
    book = emulator_state(request).faults
    if request.method == "POST":
        book.add(_or_400(FaultRule.from_json, await read_json(request, limit=_CONTROL_BODY_LIMIT)))
    elif request.method == "DELETE":
        book.clear()
    return json_response({"faults": book.as_json()})


async def discard(request: Request) -> Response:
    """Read and throw away the body: how fast bytes reach the emulator at best (benchmarks)."""
    received = 0
    async for block in request.stream():
        received += len(block)
    return json_response({"bytes": received})


def _or_400(function: Callable[[A], R], argument: A) -> R:
    """Call ``function(argument)``; a :class:`ValueError` becomes a 400 INVALID_ARGUMENT."""
    try:
        return function(argument)
    except ValueError as error:
        raise invalid_argument(str(error)) from error


def control_routes() -> list[Route]:
    """Routes of the control API."""
    return [
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/config", config, methods=["GET", "POST"]),
        Route("/_emulator/batches/{batch_id}:set_state", set_state, methods=["POST"]),
        Route("/_emulator/batches", batches, methods=["GET"]),
        Route("/_emulator/requests", requests, methods=["GET"]),
        Route("/_emulator/request_counts", request_counts, methods=["GET"]),
        Route("/_emulator/webhook_deliveries", webhook_deliveries, methods=["GET"]),
        Route("/_emulator/files/{file_id}:sha256", file_sha256, methods=["GET"]),
        Route("/_emulator/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/discard", discard, methods=["POST"]),
    ]
