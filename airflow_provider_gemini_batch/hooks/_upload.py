"""The resumable upload protocol (docs/protocol.md "Resumable upload"), streamed in large chunks.

Each chunk is read from the (seekable) source piece by piece while it is sent, so memory stays at
about one piece whatever the chunk or file size. After a dropped connection or a retryable error,
the session is asked how many bytes arrived (``query``) and the upload seeks there and continues,
so a broken gigabyte upload does not start over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import BinaryIO

import httpx

from airflow_provider_gemini_batch.exceptions import GeminiBatchConnectionError, GeminiBatchError
from airflow_provider_gemini_batch.hooks._client import SyncClient, origin, origin_text, parse_reply
from airflow_provider_gemini_batch.hooks._endpoints import ApiCall
from airflow_provider_gemini_batch.hooks._errors import error_from_response
from airflow_provider_gemini_batch.hooks._retry import RETRYABLE_STATUS
from airflow_provider_gemini_batch.models import GeminiFile

log = logging.getLogger(__name__)

DEFAULT_GRANULARITY = 8 * 1024 * 1024
# Every chunk ends in a round trip during which nothing is sent: the client waits for the server to
# drain what is in flight and answer. 64 MiB chunks pay that 8 times less often than the SDK's 8 MiB
# (``benchmarks/bench_upload.py``), and cost no memory, since a chunk is never held whole.
DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024
# Bytes read from the source and handed to the socket at a time.
_PIECE_BYTES = 1024 * 1024


def _session_from_start(response: httpx.Response) -> tuple[str, int]:
    upload_url = response.headers.get("x-goog-upload-url")
    if not upload_url:
        raise GeminiBatchError("The upload start reply had no X-Goog-Upload-URL header; cannot upload.")
    granularity = int(response.headers.get("x-goog-upload-chunk-granularity") or DEFAULT_GRANULARITY)
    return upload_url, granularity


def _finished_file(response: httpx.Response) -> GeminiFile:
    return GeminiFile.model_validate(response.json()["file"])


def _received_from_query(response: httpx.Response) -> httpx.Response:
    return response


class ResumableUpload:
    """Upload ``size`` bytes read from the seekable ``stream`` (from its current position) through one session.

    :param chunk_bytes: bytes sent per request; rounded to a multiple of the server's granularity,
        as the protocol requires of every chunk but the last.
    """

    def __init__(
        self,
        client: SyncClient,
        stream: BinaryIO,
        size: int,
        *,
        display_name: str,
        mime_type: str,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        self.client = client
        self.stream = stream
        self.size = size
        self.display_name = display_name
        self.mime_type = mime_type
        self.chunk_bytes = chunk_bytes
        self._start = stream.tell()  # Where byte 0 of the upload is in the stream.
        self._offset = 0  # Bytes the server has confirmed.
        self._handed_over = 0  # Bytes ever given to the connection: the server cannot have more.

    def run(self) -> GeminiFile:
        """Start the session, send every chunk, and return the finished file."""
        upload_url, granularity = self.client.call(self._start_call())
        self._refuse_another_origin(upload_url)
        chunk = max(granularity, self.chunk_bytes // granularity * granularity)
        failures = 0
        next_progress = self.size // 10
        while True:
            final = self.size - self._offset <= chunk
            length = self.size - self._offset if final else chunk
            response = self._send_chunk(upload_url, length, final)
            if response is None or response.status_code in RETRYABLE_STATUS:
                cause = "connection lost" if response is None else f"HTTP {response.status_code}"
                failures = self._after_failure(failures, cause)
                finished = self._resume(upload_url)
                if finished is not None:
                    return finished
                continue
            if not response.is_success:
                raise error_from_response(response, f"upload {self.display_name!r}")
            failures = 0
            if final or response.headers.get("x-goog-upload-status") == "final":
                return parse_reply(response, _finished_file, f"finish the upload of {self.display_name!r}")
            self._offset += length
            if self._offset >= next_progress:
                log.info("Uploaded %d of %d bytes of %r", self._offset, self.size, self.display_name)
                next_progress += max(1, self.size // 10)

    def _refuse_another_origin(self, upload_url: str) -> None:
        """Refuse an upload URL off the connection's origin before any byte of the file goes there."""
        base_url = self.client.settings.base_url
        if origin(upload_url) != origin(base_url):
            raise GeminiBatchError(
                f"The upload start reply sent the upload of {self.display_name!r} to {origin_text(upload_url)}, "
                f"not to the connection's host {origin_text(base_url)}; nothing was sent there. If a proxy is "
                "the connection's host, make it rewrite X-Goog-Upload-URL to its own address."
            )

    def _start_call(self) -> ApiCall[tuple[str, int]]:
        return ApiCall(
            "POST",
            self.client.settings.upload_start_url,
            _session_from_start,
            f"start the upload of {self.display_name!r}",
            json={"file": {"displayName": self.display_name, "mimeType": self.mime_type}},
            headers={
                "x-goog-upload-protocol": "resumable",
                "x-goog-upload-command": "start",
                "x-goog-upload-header-content-length": str(self.size),
                "x-goog-upload-header-content-type": self.mime_type,
            },
        )

    def _pieces(self, length: int) -> Iterator[bytes]:
        """Read the chunk of ``length`` bytes at the confirmed offset, one piece at a time."""
        self.stream.seek(self._start + self._offset)
        left = length
        while left:
            piece = self.stream.read(min(_PIECE_BYTES, left))
            if not piece:
                raise GeminiBatchError(
                    f"The source of {self.display_name!r} ended at byte {self._offset + length - left} "
                    f"but was announced as {self.size} bytes: was it changed during the upload?"
                )
            left -= len(piece)
            self._handed_over = max(self._handed_over, self._offset + length - left)
            yield piece

    def _send_chunk(self, upload_url: str, length: int, final: bool) -> httpx.Response | None:
        """Send ``length`` bytes from the confirmed offset; ``None`` when the connection broke before a reply came.

        The body goes as a generator of pieces, not as bytes: httpx keeps a request's ``content`` alive
        in a reference cycle (request, response, stream) that only the cyclic GC frees, so every sent
        chunk would linger and memory would grow with the file size. A spent generator holds nothing.
        """
        try:
            return self.client.http.post(
                upload_url,
                content=self._pieces(length),
                headers={
                    "content-length": str(length),
                    "x-goog-upload-command": "upload, finalize" if final else "upload",
                    "x-goog-upload-offset": str(self._offset),
                },
            )
        except httpx.TransportError as exc:
            log.warning(
                "Upload chunk of %r at byte %d failed: %s",
                self.display_name,
                self._offset,
                type(exc).__name__,
            )
            return None

    def _after_failure(self, failures: int, cause: str) -> int:
        retry = self.client.settings.retry
        if failures >= retry.max_retries:
            raise GeminiBatchConnectionError(
                f"The upload of {self.display_name!r} failed at byte {self._offset} after "
                f"{failures + 1} attempts ({cause}). Check the network, then run the task again."
            )
        delay = retry.backoff(failures)
        log.warning(
            "Upload of %r broke off near byte %d (%s); asking the server what arrived in %.1f s",
            self.display_name,
            self._offset,
            cause,
            delay,
        )
        time.sleep(delay)
        return failures + 1

    def _resume(self, upload_url: str) -> GeminiFile | None:
        """Ask the session how much arrived and continue from there.

        Returns the file when the session turns out to be finished already (the reply to the final
        chunk was lost after the server stored it).
        """
        response = self.client.call(
            ApiCall(
                "POST",
                upload_url,
                _received_from_query,
                f"query the upload of {self.display_name!r}",
                headers={"x-goog-upload-command": "query"},
            )
        )
        if response.headers.get("x-goog-upload-status") == "final" and response.content:
            return parse_reply(response, _finished_file, f"finish the upload of {self.display_name!r}")
        received = int(response.headers.get("x-goog-upload-size-received") or 0)
        if not 0 <= received <= self._handed_over:
            raise GeminiBatchError(
                f"The server reports {received} bytes of {self.display_name!r} received, but only "
                f"{self._handed_over} were sent; start the upload again."
            )
        log.info("Resuming the upload of %r at byte %d", self.display_name, received)
        self._offset = received
        return None
