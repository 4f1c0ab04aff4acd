"""Replies the emulator sends: JSON, errors, streamed file bytes and deliberately broken replies.

A broken reply is how the emulator drops a connection inside ASGI: it starts a response that
announces more bytes than it sends and returns. uvicorn then closes the transport, and the client
sees a transport error (httpx ``RemoteProtocolError``) instead of a clean HTTP status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from airflow_provider_gemini_batch.emulator._errors import ApiError

__all__ = [
    "STREAM_BLOCK_SIZE",
    "BrokenReply",
    "FileStreamResponse",
    "error_response",
    "json_response",
]

#: Bytes read from disk per body message when streaming a file.
STREAM_BLOCK_SIZE = 1024 * 1024

_JSON = "application/json; charset=UTF-8"


def json_response(content: Any, *, headers: dict[str, str] | None = None) -> Response:
    """Reply 200 with a JSON body: the service never answers success with another status."""
    return Response(json.dumps(content), status_code=200, media_type=_JSON, headers=headers)


def error_response(error: ApiError) -> Response:
    """Reply with the service's error body for ``error``."""
    return Response(json.dumps(error.body()), status_code=error.code, media_type=_JSON, headers=error.headers)


class BrokenReply(Response):
    """Start a 200 reply, send ``partial_body``, then hang up before the announced length."""

    def __init__(self, partial_body: bytes = b"") -> None:
        super().__init__(status_code=200)
        self.partial_body = partial_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send an incomplete response; uvicorn closes the connection when we return."""
        announced = str(len(self.partial_body) + 1024).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", announced)]})
        await send({"type": "http.response.body", "body": self.partial_body, "more_body": True})


class FileStreamResponse(Response):
    """Stream ``length`` bytes of a file from ``start``, block by block, never whole in memory.

    With ``drop_after`` set, only that many bytes are sent before the connection is dropped. With
    ``end_after_lines`` set, the reply has no ``Content-Length`` (it is chunked) and ends cleanly
    after that many complete lines: a short download that looks whole.
    """

    def __init__(
        self,
        path: Path,
        *,
        start: int,
        length: int,
        headers: dict[str, str],
        status_code: int = 200,
        drop_after: int | None = None,
        end_after_lines: int | None = None,
    ) -> None:
        super().__init__(status_code=status_code, headers={**headers, "content-length": str(length)})
        if end_after_lines is not None:
            self.raw_headers = [(name, value) for name, value in self.raw_headers if name != b"content-length"]
        self.path = path
        self.start = start
        self.length = length
        self.drop_after = drop_after
        self.end_after_lines = end_after_lines

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the headers, then the file's bytes in blocks."""
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        remaining = self.length if self.drop_after is None else min(self.drop_after, self.length)
        lines_left = self.end_after_lines
        with self.path.open("rb") as source:
            source.seek(self.start)
            while remaining > 0 and lines_left != 0:
                block = source.read(min(STREAM_BLOCK_SIZE, remaining))
                if not block:
                    break
                if lines_left is not None:
                    block, lines_left = _through_lines(block, lines_left)
                remaining -= len(block)
                await send({"type": "http.response.body", "body": block, "more_body": True})
        if self.drop_after is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _through_lines(block: bytes, lines: int) -> tuple[bytes, int]:
    """Cut ``block`` after its ``lines``-th newline, if it has that many; return it and the lines still to go."""
    end = 0
    while lines > 0:
        newline = block.find(b"\n", end)
        if newline < 0:
            return block, lines
        end = newline + 1
        lines -= 1
    return block[:end], 0
