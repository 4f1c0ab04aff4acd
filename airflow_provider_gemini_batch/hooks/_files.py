"""The Files API half of ``GeminiBatchHook``: upload (validated batch input included), get, list, delete, download.

A base class of the hook, as the connection side (``_base.py``) is: users call these methods on
``GeminiBatchHook``; the split keeps each module to one resource.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from airflow_provider_gemini_batch.batch_input import (
    INLINE_LIMIT_BYTES,
    PreparedInput,
    inline_body_bytes,
    parse_records,
    records_to_jsonl,
    validate_jsonl,
)
from airflow_provider_gemini_batch.hooks import _endpoints
from airflow_provider_gemini_batch.hooks._base import GeminiBaseHook
from airflow_provider_gemini_batch.hooks._endpoints import pages
from airflow_provider_gemini_batch.hooks._sources import open_destination, open_source
from airflow_provider_gemini_batch.hooks._split import split_jsonl
from airflow_provider_gemini_batch.hooks._upload import DEFAULT_CHUNK_BYTES, ResumableUpload
from airflow_provider_gemini_batch.models import BatchKind, GeminiFile
from airflow_provider_gemini_batch.settings import DEFAULT_SHARD_MAX_BYTES
from airflow_provider_gemini_batch.sharding import ShardLimits


class GeminiFilesHook(GeminiBaseHook):
    """Files API methods of ``GeminiBatchHook`` (use that class; parameters as its)."""

    # -- files ----------------------------------------------------------------------------------

    def upload_file(
        self,
        source: str | os.PathLike[str] | BinaryIO | Any,
        *,
        display_name: str | None = None,
        mime_type: str = "jsonl",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> GeminiFile:
        """Upload a file with the resumable protocol, streamed in chunks; resume after a dropped connection.

        :param source: a local path, a binary file object, or an ``ObjectStoragePath``.
        :param display_name: shown in the Files API; defaults to the source's file name.
        :param mime_type: ``jsonl`` for batch input, as the docs use.
        :param chunk_bytes: bytes per chunk request, rounded to the server's granularity.
        """
        with open_source(source) as (stream, size, default_name):
            upload = ResumableUpload(
                self.client,
                stream,
                size,
                display_name=display_name or default_name,
                mime_type=mime_type,
                chunk_bytes=chunk_bytes,
            )
            uploaded = upload.run()
        self.log.info("Uploaded %s (%d bytes) as %s", uploaded.display_name, uploaded.size_bytes, uploaded.name)
        return uploaded

    def upload_jsonl(
        self, source: str | os.PathLike[str] | Any, *, display_name: str | None = None, kind: BatchKind | None = None
    ) -> GeminiFile:
        """Validate a batch input JSONL file line by line, then upload it; nothing is sent if a line is bad.

        :param source: a local path, a URI or an ``ObjectStoragePath``.
        :param kind: the kind of job the file is for (``"generate"`` or ``"embed"``), whose request shape
            every line must have; ``None`` (not known yet) accepts either shape.
        :raises GeminiBatchInputError: naming every bad line (number and what to fix).
        """
        with open_source(source) as (stream, _size, name):
            validate_jsonl(stream, repr(name), kind=kind)
        return self.upload_file(source, display_name=display_name)

    def split_input(
        self,
        source: Any,
        destination: Any,
        *,
        max_bytes: int = DEFAULT_SHARD_MAX_BYTES,
        max_requests: int | None = None,
        max_tokens: int | None = None,
        key_field: str = "key",
        kind: BatchKind | None = None,
        prefix: str = "shard",
    ) -> list[str]:
        """Split a batch input into shard files under limits, each ready to submit as one job; no API call.

        Lines are read, validated and written one at a time, so memory does not grow with the input
        (duplicate keys are found with 8 bytes a key, ``sharding.KeyLedger``). Shards are named
        ``<prefix>-00001.jsonl``, ... in ``destination`` and appear there only when the whole input
        passed: a bad input publishes nothing.

        :param source: a JSONL file (local path, URI, ``ObjectStoragePath``; any size), or records (dicts
            ``{"key", "request"}``, or flat with ``key_field`` beside the request body).
        :param destination: the folder for the shards (local path, URI, ``ObjectStoragePath``); made if missing.
        :param max_bytes: bytes per shard (default: 128 MiB under the Files API's 2 GB).
        :param max_requests: requests per shard (default: no limit).
        :param max_tokens: estimated input tokens per shard (``sharding.estimate_tokens``: bytes / 4);
            keep it under the model's enqueued-token limit (default: no limit).
        :param kind: ``"generate"`` or ``"embed"``: the request shape every line must have (``None``: either).
        :return: the shard paths, in input order (URIs for object storage).
        :raises GeminiBatchInputError: naming every bad line and every line no shard can hold, and keys
            repeated anywhere in the input; nothing is published then.
        """
        limits = ShardLimits(max_bytes, max_requests, max_tokens)
        paths = split_jsonl(source, destination, limits, kind=kind, key_field=key_field, prefix=prefix)
        self.log.info("Split the input into %d shard(s) in %s", len(paths), destination)
        return paths

    def upload_records(
        self,
        records: Iterable[Any] | str,
        *,
        display_name: str | None = None,
        key_field: str = "key",
        kind: BatchKind | None = None,
    ) -> GeminiFile:
        """Validate records, write them as batch input JSONL to a temporary file, and upload it.

        :param records: dicts (``{"key", "request"}``, or flat with ``key_field`` beside the request
            body), or a JSON string of them.
        :param kind: the kind of job the records are for, as for ``upload_jsonl``.
        :raises GeminiBatchInputError: naming every bad record; nothing is uploaded then.
        """
        with tempfile.TemporaryDirectory(prefix="gemini-batch-") as folder:
            path = os.path.join(folder, "requests.jsonl")
            with open(path, "wb") as out:
                records_to_jsonl(parse_records(records), out, key_field=key_field, kind=kind)
            return self.upload_file(path, display_name=display_name or "requests.jsonl")

    def prepare_input(
        self,
        *,
        requests: Iterable[Any] | str | None = None,
        input_file: str | None = None,
        input_path: str | os.PathLike[str] | Any = None,
        display_name: str | None = None,
        key_field: str = "key",
        kind: BatchKind | None = None,
    ) -> PreparedInput:
        """Turn what a task was given into a validated batch input, uploading only when it must.

        An ``input_file`` is used as is; an ``input_path`` is validated and uploaded; ``requests`` stay
        inline while the create body fits the service's limit (``INLINE_LIMIT_BYTES``), else they
        are uploaded as a file. Validation covers every line before anything is sent.

        :param kind: the kind of job the input is for (``"generate"`` or ``"embed"``), whose request
            shape every request must have; ``None`` accepts either.
        """
        if input_file is not None:
            return PreparedInput(input_file=input_file)
        if input_path is not None:
            return PreparedInput(input_file=self.upload_jsonl(input_path, display_name=display_name, kind=kind).name)
        with tempfile.SpooledTemporaryFile(max_size=INLINE_LIMIT_BYTES) as spool:
            summary = records_to_jsonl(parse_records(requests), spool, key_field=key_field, kind=kind)
            spool.seek(0)
            if summary.byte_count <= INLINE_LIMIT_BYTES:
                items = [json.loads(line) for line in spool]
                if inline_body_bytes(items) <= INLINE_LIMIT_BYTES:
                    return PreparedInput(requests=items)
                spool.seek(0)
            self.log.info(
                "Inline requests would make a create body over the %d-byte limit: uploading them as a file",
                INLINE_LIMIT_BYTES,
            )
            uploaded = self.upload_file(spool, display_name=display_name or "requests.jsonl")
        return PreparedInput(input_file=uploaded.name)

    def get_file(self, name: str) -> GeminiFile:
        """Get a file's metadata. A missing file answers 403 (``GeminiBatchPermissionError``), as the service does."""
        return self.client.call(_endpoints.get_file(name))

    def list_files(self, *, page_size: int | None = None) -> Iterator[GeminiFile]:
        """Iterate over every file, fetching page after page."""
        return pages(lambda token: self.client.call(_endpoints.list_files(page_size, token)))

    def delete_file(self, name: str) -> None:
        """Delete a file."""
        self.client.call(_endpoints.delete_file(name))

    def download_file(self, name: str, destination: str | os.PathLike[str] | Any) -> int:
        """Stream a file to a local path or ``ObjectStoragePath``; return the bytes written.

        A dropped connection resumes where it broke off: the written file is complete and correct.
        The file appears at ``destination`` only when complete (it is written under a temporary name
        in the same folder, then moved into place); after a failure nothing new is left there.

        :param name: ``files/...``.
        :param destination: a local path, a URI (``s3://...``, ``file://...``) or an ``ObjectStoragePath``.
        :raises GeminiBatchConnectionError: the connection kept dropping after every retry.
        """
        _endpoints.resource_name(name, "files")
        written = 0
        with open_destination(destination) as out:
            for chunk in self.client.iter_file_bytes(name):
                out.write(chunk)
                written += len(chunk)
        self.log.info("Downloaded %s (%d bytes)", name, written)
        return written

    async def aget_file(self, name: str) -> GeminiFile:
        """Get a file's metadata."""
        return await (await self.aclient()).call(_endpoints.get_file(name))
