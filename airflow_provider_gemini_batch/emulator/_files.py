"""Files kept on disk: uploaded files, resumable upload sessions and generated results files.

Layout under the data directory::

    files/{id}            the bytes of every finished file
    uploads/{upload_id}   a resumable upload in progress, appended chunk by chunk
    jobs/{batch id}       a hard link to a file job's input, so deleting the file keeps the job whole

Bytes always travel to and from disk in blocks; nothing here holds a whole file in memory.
Every method runs on the server's event loop thread except :meth:`FileStore.write_generated`,
which only writes to disk and leaves registering the result to the caller.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from airflow_provider_gemini_batch.emulator._errors import ApiError, file_not_found, invalid_argument
from airflow_provider_gemini_batch.emulator._wire import (
    int64,
    is_resource_id,
    new_resource_id,
    omit_empty,
    timestamp,
)

__all__ = ["FileStore", "StoredFile", "UploadSession"]

#: Files expire 48 h after creation (docs/protocol.md "Limits").
_LIFETIME_NANOS = 48 * 3600 * 1_000_000_000


@dataclasses.dataclass
class StoredFile:
    """One finished file and what the File resource says about it."""

    file_id: str
    path: Path
    mime_type: str
    size: int
    sha256_hex: str
    source: str
    display_name: str | None = None
    created_ns: int = dataclasses.field(default_factory=time.time_ns)
    discarded: bool = False

    def require_content(self) -> None:
        """Refuse to read a file whose bytes were discarded (``discard_uploads``)."""
        if self.discarded:
            raise invalid_argument(
                f"File {self.name} was uploaded while discard_uploads was on: its bytes were not kept."
            )

    @property
    def name(self) -> str:
        """The resource name, ``files/{id}``."""
        return f"files/{self.file_id}"

    def resource(self, base_url: str, version: str) -> dict[str, Any]:
        """Render the File resource as the service does."""
        created = timestamp(self.created_ns)
        download_uri = None
        if self.source == "GENERATED":
            download_uri = f"{base_url}/download/{version}/files/{self.file_id}:download?alt=media"
        return omit_empty(
            {
                "name": self.name,
                "displayName": self.display_name,
                "mimeType": self.mime_type,
                "sizeBytes": int64(self.size),
                "createTime": created,
                "updateTime": created,
                "expirationTime": timestamp(self.created_ns + _LIFETIME_NANOS),
                # The service base64-encodes the *hex string* of the digest, not the digest bytes.
                "sha256Hash": base64.b64encode(self.sha256_hex.encode()).decode(),
                "uri": f"{base_url}/{version}/files/{self.file_id}",
                "downloadUri": download_uri,
                "state": "ACTIVE",
                "source": self.source,
            }
        )


@dataclasses.dataclass
class UploadSession:
    """A resumable upload: where its bytes go and how many have arrived."""

    upload_id: str
    file_id: str
    path: Path
    mime_type: str
    granularity: int
    declared_size: int | None
    display_name: str | None
    discard: bool = False
    received: int = 0
    finished: StoredFile | None = None
    hasher: Any = dataclasses.field(default_factory=hashlib.sha256)

    async def receive(self, blocks: AsyncIterator[bytes], limit: int | None = None) -> int:
        """Append a chunk's body, block by block as it arrives; keep at most ``limit`` bytes.

        Return how many bytes were kept. With a limit, stop reading once it is reached.
        """
        kept = 0
        with contextlib.nullcontext() if self.discard else self.path.open("ab") as target:
            async for block in blocks:
                if limit is not None:
                    block = block[: limit - kept]
                if target is not None:  # None: discard_uploads, count the bytes only
                    target.write(block)
                    self.hasher.update(block)
                kept += len(block)
                if limit is not None and kept >= limit:
                    break
        self.received += kept
        return kept

    def checkpoint(self) -> tuple[int, Any]:
        """Remember the current length, to undo a rejected chunk with :meth:`rollback`."""
        return self.received, self.hasher.copy()

    def rollback(self, checkpoint: tuple[int, Any]) -> None:
        """Forget everything appended since ``checkpoint``."""
        self.received, self.hasher = checkpoint
        if self.discard:
            return
        with self.path.open("r+b") as target:
            target.truncate(self.received)


class FileStore:
    """Every file and upload session of one emulator, on disk under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, UploadSession] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every file and upload and delete their bytes."""
        self._files.clear()
        self._uploads.clear()
        for folder in ("files", "uploads", "jobs"):
            shutil.rmtree(self.root / folder, ignore_errors=True)
            (self.root / folder).mkdir(parents=True)

    def start_upload(
        self,
        *,
        requested_name: str | None,
        display_name: str | None,
        mime_type: str,
        declared_size: int | None,
        granularity: int,
        discard: bool = False,
    ) -> UploadSession:
        """Open a resumable upload session for a new file."""
        file_id = self._claim_file_id(requested_name)
        upload_id = new_resource_id(32)
        path = self.root / "uploads" / upload_id
        path.touch()
        session = UploadSession(
            upload_id, file_id, path, mime_type, granularity, declared_size, display_name, discard=discard
        )
        self._uploads[upload_id] = session
        return session

    def upload_session(self, upload_id: str) -> UploadSession:
        """Return the session behind an upload URL's ``upload_id``."""
        session = self._uploads.get(upload_id)
        if session is None:
            raise ApiError(404, "Upload session not found: it was never started, or it was cancelled.")
        return session

    def cancel_upload(self, session: UploadSession) -> None:
        """Drop an unfinished upload and its bytes."""
        self._uploads.pop(session.upload_id, None)
        session.path.unlink(missing_ok=True)

    def finish_upload(self, session: UploadSession) -> StoredFile:
        """Turn a complete upload into a file."""
        if session.declared_size is not None and session.received != session.declared_size:
            raise invalid_argument(
                f"Upload finalized after {session.received} bytes, but "
                f"X-Goog-Upload-Header-Content-Length announced {session.declared_size}."
            )
        if session.file_id in self._files:
            raise ApiError(409, f"A file named files/{session.file_id} already exists.")
        path = self.root / "files" / session.file_id
        os.replace(session.path, path)
        stored = StoredFile(
            session.file_id,
            path,
            session.mime_type,
            session.received,
            "" if session.discard else session.hasher.hexdigest(),
            source="UPLOADED",
            display_name=session.display_name,
            discarded=session.discard,
        )
        self._files[stored.file_id] = stored
        session.finished = stored
        return stored

    def get(self, name: str) -> StoredFile:
        """Return the file named ``files/{id}`` (or bare ``{id}``); 403 when there is none."""
        stored = self._files.get(name.removeprefix("files/"))
        if stored is None:
            raise file_not_found(name)
        return stored

    def newest_first(self) -> list[StoredFile]:
        """Every file, newest first."""
        return sorted(self._files.values(), key=lambda stored: stored.created_ns, reverse=True)

    def delete(self, name: str) -> None:
        """Delete a file and its bytes (a job that uses it keeps its own link)."""
        stored = self.get(name)
        del self._files[stored.file_id]
        stored.path.unlink(missing_ok=True)

    def link_job_input(self, stored: StoredFile, batch_id: str) -> Path:
        """Give a job its own name for its input file's bytes; return it."""
        link = self.root / "jobs" / batch_id
        try:
            os.link(stored.path, link)
        except OSError:  # e.g. a filesystem without hard links
            shutil.copyfile(stored.path, link)
        return link

    def write_generated(self, file_id: str, lines: Iterable[bytes], mime_type: str) -> StoredFile:
        """Write a generated file line by line and return it, *not yet registered* (thread-safe)."""
        path = self.root / "files" / file_id
        hasher = hashlib.sha256()
        size = 0
        with path.open("wb") as target:
            for line in lines:
                target.write(line)
                hasher.update(line)
                size += len(line)
        return StoredFile(file_id, path, mime_type, size, hasher.hexdigest(), source="GENERATED")

    def register(self, stored: StoredFile) -> None:
        """Make a file written by :meth:`write_generated` visible."""
        self._files[stored.file_id] = stored

    def _claim_file_id(self, requested_name: str | None) -> str:
        if not requested_name:
            return new_resource_id()
        file_id = requested_name.removeprefix("files/")
        if not is_resource_id(file_id):
            raise invalid_argument(
                f"Invalid file name {requested_name[:60]!r}: ids are up to 40 characters of [a-z0-9-]."
            )
        if file_id in self._files:
            raise ApiError(409, f"A file named files/{file_id} already exists.")
        return file_id
