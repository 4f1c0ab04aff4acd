"""Operators for media inputs: upload images, PDFs or audio for requests to reference, and delete them after."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.operators.batch import GeminiBatchBaseOperator
from airflow_provider_gemini_batch.settings import DEFAULT_MEDIA_PARALLEL_UPLOADS
from airflow_provider_gemini_batch.storage import require_filesystem

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class GeminiUploadMediaOperator(GeminiBatchBaseOperator):
    """Upload a folder (or list) of media files in parallel and return what requests need to reference them.

    Each file is uploaded to the Files API (its MIME type from its extension: images, PDFs, audio,
    video, text), at most ``max_parallel`` at a time. The XCom is a small list, one dict per file in
    name order: ``name`` (``files/...``, for cleanup), ``uri`` and ``mime_type`` (for a request part
    ``{"fileData": {"fileUri": uri, "mimeType": mime_type}}``) and ``source``. A file of unknown type
    stops the task before anything is sent; when an upload fails, those already uploaded are deleted.
    Uploaded files live 48 hours: the submit operator refuses references to files that would expire
    before the job could run (``docs/media.md``). Delete them after the job with
    ``GeminiDeleteMediaOperator`` (``trigger_rule="all_done"``).

    :param source: a folder (its files, not hidden ones nor subfolders) or a list of files; local
        paths, URIs (``s3://``, ``gs://``, ``file://``) or ``ObjectStoragePath``\\ s (templated).
    :param max_parallel: uploads in flight at once.
    """

    template_fields: Sequence[str] = ("source", "gemini_conn_id")

    def __init__(self, *, source: Any, max_parallel: int = DEFAULT_MEDIA_PARALLEL_UPLOADS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for location in source if isinstance(source, (list, tuple)) else [source]:
            require_filesystem(location, what="source")
        self.source = source
        self.max_parallel = max_parallel

    def execute(self, context: Context) -> list[dict[str, str]]:
        return self.hook.upload_media(self.source, max_parallel=int(self.max_parallel))


class GeminiDeleteMediaOperator(GeminiBatchBaseOperator):
    """Delete uploaded media files, in parallel: a cleanup task for ``trigger_rule="all_done"``.

    A file already gone (deleted, expired) is passed over. With nothing to delete (the upload task
    failed before returning its list) the task succeeds and says so.

    :param files: the ``GeminiUploadMediaOperator``'s XCom (dicts with ``name``), or ``files/...``
        names, or one name (templated; a JSON string of either is read too).
    :param max_parallel: deletes in flight at once.
    """

    template_fields: Sequence[str] = ("files", "gemini_conn_id")

    def __init__(self, *, files: Any, max_parallel: int = DEFAULT_MEDIA_PARALLEL_UPLOADS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.files = files
        self.max_parallel = max_parallel

    def execute(self, context: Context) -> int:
        names = _file_names(self.files)
        if not names:
            self.log.info("No media files to delete")
            return 0
        deleted = self.hook.delete_files(names, max_parallel=int(self.max_parallel))
        self.log.info("Deleted %d of %d media files (the others were gone)", deleted, len(names))
        return deleted


def _file_names(files: Any) -> list[str]:
    if files is None or files in ("", "None", "null"):
        return []
    if isinstance(files, str):
        files = json.loads(files) if files.lstrip().startswith(("[", "{")) else [files]
    if isinstance(files, Mapping):
        files = [files]
    names = []
    for item in files:
        name = item.get("name") if isinstance(item, Mapping) else item
        if not isinstance(name, str) or not name.startswith("files/"):
            raise GeminiBatchInputError(f"Cannot delete {item!r}: pass files/... names or the upload task's XCom.")
        names.append(name)
    return names
