"""The Files API: resumable upload, get, list, delete and download (docs/protocol.md "Files API").

A resumable upload is one ``POST /upload/{version}/files`` to start, then ``POST`` to the returned
upload URL (``?upload_id=``) per chunk. The upload URL is its own credential: chunk and query
requests carry no API key.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_gemini_batch.emulator._errors import ApiError, invalid_argument
from airflow_provider_gemini_batch.emulator._files import StoredFile, UploadSession
from airflow_provider_gemini_batch.emulator._requests import (
    api_version,
    base_url,
    page_parameters,
    read_json,
)
from airflow_provider_gemini_batch.emulator._responses import BrokenReply, FileStreamResponse, json_response
from airflow_provider_gemini_batch.emulator._state import emulator_state
from airflow_provider_gemini_batch.emulator._wire import omit_empty, paginate, read_field

__all__ = ["file_routes"]

#: Input files may be at most 2 GB (docs/protocol.md "Limits").
MAX_FILE_BYTES = 2 * 1024**3
_START_BODY_LIMIT = 1024 * 1024
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


async def upload(request: Request) -> Response:
    """Start a resumable upload, or take a chunk / query of one (when ``upload_id`` is given)."""
    version = api_version(request)
    upload_id = request.query_params.get("upload_id")
    if upload_id is not None:
        return await _upload_command(request, upload_id)
    if request.headers.get("x-goog-upload-protocol", "").lower() != "resumable":
        raise invalid_argument("The emulator supports resumable uploads only: send X-Goog-Upload-Protocol: resumable.")
    if request.headers.get("x-goog-upload-command", "").lower() != "start":
        raise invalid_argument("A resumable upload starts with X-Goog-Upload-Command: start.")
    body = await read_json(request, limit=_START_BODY_LIMIT)
    file = read_field(body, "file") or {}
    state = emulator_state(request)
    session = state.files.start_upload(
        requested_name=read_field(file, "name"),
        display_name=read_field(file, "displayName"),
        mime_type=read_field(file, "mimeType")
        or request.headers.get("x-goog-upload-header-content-type")
        or "application/octet-stream",
        declared_size=_declared_size(request),
        granularity=state.config.chunk_granularity,
        discard=state.config.discard_uploads,
    )
    url = f"{base_url(request)}/upload/{version}/files?upload_id={session.upload_id}&upload_protocol=resumable"
    elsewhere = state.faults.take("upload_url", request.method, request.url.path)
    if elsewhere is not None and elsewhere.url is not None:
        url = elsewhere.url
    return Response(
        status_code=200,
        headers={
            "X-Goog-Upload-Status": "active",
            "X-Goog-Upload-URL": url,
            "X-Goog-Upload-Control-URL": url,
            "X-Goog-Upload-Chunk-Granularity": str(session.granularity),
        },
    )


def _declared_size(request: Request) -> int | None:
    raw = request.headers.get("x-goog-upload-header-content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise invalid_argument(f"Invalid X-Goog-Upload-Header-Content-Length {raw[:20]!r}.")
    if int(raw) > MAX_FILE_BYTES:
        raise invalid_argument(f"File size {raw} exceeds the limit of {MAX_FILE_BYTES} bytes.")
    return int(raw)


async def _upload_command(request: Request, upload_id: str) -> Response:
    """Run ``query``, ``cancel`` or ``upload[, finalize]`` on an upload session."""
    state = emulator_state(request)
    session = state.files.upload_session(upload_id)
    commands = {part.strip() for part in request.headers.get("x-goog-upload-command", "").lower().split(",")}
    if session.finished is not None:
        # A finalize whose reply was lost may be retried; answer it with the file again.
        return _upload_reply(request, session)
    if "query" in commands:
        return _upload_reply(request, session)
    if "cancel" in commands:
        state.files.cancel_upload(session)
        return Response(status_code=200, headers={"X-Goog-Upload-Status": "cancelled"})
    if not commands & {"upload", "finalize"}:
        raise invalid_argument("X-Goog-Upload-Command must be upload, 'upload, finalize', finalize or query.")
    _check_offset(request, session)
    checkpoint = session.checkpoint()
    fault = state.faults.take("drop_upload", request.method, request.url.path)
    kept = await session.receive(request.stream(), limit=fault.after_bytes if fault else None)
    if fault is not None:
        return BrokenReply()
    finalize = "finalize" in commands
    try:
        _check_chunk(session, kept, finalize)
        if finalize:
            state.files.finish_upload(session)
    except ApiError:  # a rejected chunk leaves the upload as it was before it
        session.rollback(checkpoint)
        raise
    return _upload_reply(request, session)


def _check_offset(request: Request, session: UploadSession) -> None:
    offset = request.headers.get("x-goog-upload-offset", "")
    if offset.isdigit() and int(offset) == session.received:
        return
    raise ApiError(
        400,
        f"X-Goog-Upload-Offset {offset[:20]!r} does not match the {session.received} bytes received: "
        "query the upload and resume from X-Goog-Upload-Size-Received.",
        headers={"X-Goog-Upload-Status": "active", "X-Goog-Upload-Size-Received": str(session.received)},
    )


def _check_chunk(session: UploadSession, length: int, finalize: bool) -> None:
    if not finalize and length % session.granularity:
        raise invalid_argument(
            f"Upload chunk of {length} bytes is not a multiple of the chunk granularity {session.granularity}."
        )
    if session.declared_size is not None and session.received > session.declared_size:
        raise invalid_argument(
            f"Upload exceeds the {session.declared_size} bytes announced in X-Goog-Upload-Header-Content-Length."
        )


def _upload_reply(request: Request, session: UploadSession) -> Response:
    headers = {"X-Goog-Upload-Size-Received": str(session.received)}
    if session.finished is None:
        return Response(status_code=200, headers={**headers, "X-Goog-Upload-Status": "active"})
    file = _resource(request, session.finished)
    return json_response({"file": file}, headers={**headers, "X-Goog-Upload-Status": "final"})


def _resource(request: Request, stored: StoredFile) -> dict[str, object]:
    return stored.resource(base_url(request), api_version(request))


async def get_file(request: Request) -> Response:
    """``GET /{version}/files/{id}`` → File."""
    stored = emulator_state(request).files.get(request.path_params["file_id"])
    return json_response(_resource(request, stored))


async def list_files(request: Request) -> Response:
    """``GET /{version}/files`` → ``{"files": [...], "nextPageToken"}``, or ``{}`` when empty."""
    page_size, page_token = page_parameters(request)
    try:
        page, next_token = paginate(
            emulator_state(request).files.newest_first(),
            page_size=page_size,
            page_token=page_token,
            default_size=10,
            max_size=100,
        )
    except ValueError as error:
        raise invalid_argument(str(error)) from error
    files = [_resource(request, stored) for stored in page]
    return json_response(omit_empty({"files": files, "nextPageToken": next_token}))


async def delete_file(request: Request) -> Response:
    """``DELETE /{version}/files/{id}`` → ``{}``."""
    api_version(request)
    emulator_state(request).files.delete(request.path_params["file_id"])
    return json_response({})


async def download_file(request: Request) -> Response:
    """Stream a file's bytes; honour ``Range: bytes=N-`` so a broken download can resume."""
    api_version(request)
    state = emulator_state(request)
    stored = state.files.get(request.path_params["file_id"])
    stored.require_content()
    headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
    start, end = _byte_range(request.headers.get("range"), stored.size)
    status = 200
    if (start, end) != (0, stored.size):
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{stored.size}"
    drop = state.faults.take("drop_download", request.method, request.url.path)
    end_early = state.faults.take("end_download_early", request.method, request.url.path)
    return FileStreamResponse(
        stored.path,
        start=start,
        length=end - start,
        headers=headers,
        status_code=status,
        drop_after=drop.after_bytes if drop else None,
        end_after_lines=end_early.after_lines if end_early else None,
    )


def _byte_range(header: str | None, size: int) -> tuple[int, int]:
    """Return ``[start, end)`` asked for by a ``Range`` header; the whole file if there is none."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None:  # absent or a form we do not serve: send everything, as RFC 9110 allows
        return 0, size
    start = int(match.group(1))
    end = min(int(match.group(2)) + 1, size) if match.group(2) else size
    if start >= size or start >= end:
        raise ApiError(
            416,
            f"Requested range not satisfiable: the file has {size} bytes.",
            status="OUT_OF_RANGE",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


def file_routes() -> list[Route]:
    """Routes of the Files API; the ``:download`` routes come before ``files/{id}`` on purpose."""
    return [
        Route("/upload/{version}/files", upload, methods=["POST"]),
        Route("/download/{version}/files/{file_id}:download", download_file, methods=["GET"]),
        Route("/{version}/files/{file_id}:download", download_file, methods=["GET"]),
        Route("/{version}/files", list_files, methods=["GET"]),
        Route("/{version}/files/{file_id}", get_file, methods=["GET"]),
        Route("/{version}/files/{file_id}", delete_file, methods=["DELETE"]),
    ]
