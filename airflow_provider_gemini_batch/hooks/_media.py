"""The media half of ``GeminiBatchHook``: media inputs uploaded and checked before a job; media outputs as files.

Inputs: ``upload_media`` uploads a folder (or list) of images, PDFs or audio within a bound of
uploads in flight; ``check_media_references`` looks up every file a batch input references
(``fileData.fileUri``) before a job is created, and ``media_inputs`` judges each. Outputs:
``media_files`` gives ``batch_results.media`` a folder whose files are written under hidden names
and renamed into place only when the results file is complete, the way ``hooks/_split.py``
publishes shards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from airflow_provider_gemini_batch.batch_input import parse_records
from airflow_provider_gemini_batch.batch_results.media import MediaExtractor
from airflow_provider_gemini_batch.batch_results.result import json_decode
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError, GeminiBatchPermissionError
from airflow_provider_gemini_batch.hooks._files import GeminiFilesHook
from airflow_provider_gemini_batch.hooks._sources import as_storage_path
from airflow_provider_gemini_batch.hooks._split import _Folder, _jsonl_source
from airflow_provider_gemini_batch.media_inputs import (
    LINE_MARKS,
    MediaReferences,
    file_problem,
    media_mime_type,
    records_places,
    refuse_unusable,
)
from airflow_provider_gemini_batch.models import GeminiFile
from airflow_provider_gemini_batch.settings import DEFAULT_MEDIA_PARALLEL_UPLOADS, media_expiry_margin

T = TypeVar("T")
R = TypeVar("R")


class GeminiMediaHook(GeminiFilesHook):
    """Media methods of ``GeminiBatchHook`` (use that class; parameters as its)."""

    def upload_media(self, sources: Any, *, max_parallel: int = DEFAULT_MEDIA_PARALLEL_UPLOADS) -> list[dict[str, str]]:
        """Upload media files (images, PDFs, audio, video), ``max_parallel`` at a time; return what requests need.

        Every file's MIME type is known before anything is sent (from its extension); when an upload
        fails, the files uploaded so far are deleted again, so nothing is left to pay storage for.

        :param sources: a folder (its files, not its subfolders nor hidden files, in name order) or a
            list of files: local paths, URIs or ``ObjectStoragePath``\\ s.
        :return: one dict per file, in order: ``name`` (``files/...``), ``uri`` (for ``fileData.fileUri``),
            ``mime_type`` (for ``fileData.mimeType``) and ``source`` (the file uploaded). Small: fit for XCom.
        :raises GeminiBatchInputError: no files, or a file of no known media type; nothing is uploaded.
        """
        paths = _media_paths(sources)
        typed = [(path, media_mime_type(str(path))) for path in paths]
        self.client  # noqa: B018 (built here, once: the threads below share it)
        uploaded: list[GeminiFile | None] = [None] * len(typed)

        def upload(index: int) -> None:
            path, mime_type = typed[index]
            uploaded[index] = self.upload_file(path, mime_type=mime_type, display_name=_base_name(path))

        try:
            _bounded(upload, range(len(typed)), max_parallel)
        except BaseException:
            done = [file.name for file in uploaded if file is not None]
            self.log.warning("An upload failed: deleting the %d media files uploaded before it", len(done))
            self.delete_files(done, max_parallel=max_parallel)
            raise
        self.log.info("Uploaded %d media files", len(typed))
        return [
            {"name": file.name, "uri": file.uri or file.name, "mime_type": mime_type, "source": str(path)}
            for file, (path, mime_type) in zip(uploaded, typed, strict=True)
            if file is not None
        ]

    def delete_files(
        self, names: Iterable[str], *, max_parallel: int = DEFAULT_MEDIA_PARALLEL_UPLOADS, ignore_missing: bool = True
    ) -> int:
        """Delete files ``max_parallel`` at a time; return how many were deleted.

        :param ignore_missing: pass over a file that is gone (403, as the service answers for a missing
            file); a 403 for the key itself (API_KEY_INVALID) still raises.
        """

        def delete(name: str) -> bool:
            try:
                self.delete_file(name)
            except GeminiBatchPermissionError as exc:
                if not ignore_missing or exc.reason == "API_KEY_INVALID":
                    raise
                return False
            return True

        self.client  # noqa: B018 (built once, before the threads)
        return sum(_bounded(delete, list(dict.fromkeys(names)), max_parallel))

    def check_media_references(
        self,
        *,
        requests: Any = None,
        input_path: Any = None,
        margin: timedelta | None = None,
        max_parallel: int = DEFAULT_MEDIA_PARALLEL_UPLOADS,
    ) -> int:
        """Check every file the input references (``fileData.fileUri``) before a job is created; return how many.

        Each distinct file is looked up once: it must exist with this key (a missing, expired or
        another project's file answers 403), be ``ACTIVE``, and live ``margin`` longer (default
        ``[gemini_batch] media_expiry_margin_hours``). Input lines without a file reference are not parsed.

        :param requests: records or requests, as the submit operator takes them (a list, or its JSON).
        :param input_path: a batch input JSONL file (local path, URI or ``ObjectStoragePath``).
        :raises GeminiBatchInputError: naming every unusable file, the lines (or ``requests[i]``)
            that reference it, and what to do.
        """
        references = MediaReferences()
        if requests is not None:
            records = parse_records(requests)
            if not isinstance(records, Sequence):
                return 0  # An iterator read once, by the upload: its lines are validated there.
            for record, place in records_places(records):
                references.add_record(record, place)
            source = "the requests"
        elif input_path is not None:
            if as_storage_path(input_path) is None and not os.path.isfile(os.fspath(input_path)):
                return 0  # Not a file: the upload names it.
            source = str(input_path)
            with _jsonl_source(input_path, "key", None) as (lines, _name):
                for number, line in enumerate(lines, start=1):
                    if LINE_MARKS[0] in line or LINE_MARKS[1] in line:
                        with contextlib.suppress(ValueError):  # A bad line: the input's validation names it.
                            references.add_record(json_decode(line), f"line {number}")
        else:
            return 0
        names = list(references.counts)
        if not names and not references.unreadable:
            return 0
        found = dict(zip(names, _bounded(self._file_or_none, names, max_parallel), strict=True))
        now = datetime.now(timezone.utc)
        margin = media_expiry_margin() if margin is None else margin
        problems = {name: problem for name in names if (problem := file_problem(name, found[name], now, margin))}
        refuse_unusable(references, problems, source)
        self.log.info("The %d media files %s references are ACTIVE and live long enough", len(names), source)
        return len(names)

    def _file_or_none(self, name: str) -> GeminiFile | None:
        try:
            return self.get_file(name)
        except GeminiBatchPermissionError as exc:
            if exc.reason == "API_KEY_INVALID":
                raise
            return None


def _bounded(work: Callable[[T], R], items: Collection[T], max_parallel: int) -> list[R]:
    """``work`` over ``items``, at most ``max_parallel`` at once; results in order; the first error raised."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(int(max_parallel), len(items)))) as pool:
        return list(pool.map(work, items))


def _media_paths(sources: Any) -> list[Any]:
    if isinstance(sources, (str, os.PathLike)) or as_storage_path(sources) is not None:
        storage_path = as_storage_path(sources)
        if storage_path is not None and storage_path.is_dir():
            paths: list[Any] = sorted(
                (path for path in storage_path.iterdir() if path.is_file() and not path.name.startswith(".")),
                key=lambda path: path.name,
            )
        elif storage_path is None and os.path.isdir(os.fspath(sources)):
            folder = os.fspath(sources)
            paths = [
                os.path.join(folder, name)
                for name in sorted(os.listdir(folder))
                if not name.startswith(".") and os.path.isfile(os.path.join(folder, name))
            ]
        else:
            paths = [sources]
    else:
        paths = list(sources)
    if not paths:
        raise GeminiBatchInputError(f"No media files in {sources!r}: pass a folder with files, or a list of files.")
    return paths


def _base_name(path: Any) -> str:
    storage_path = as_storage_path(path)
    return str(storage_path.name) if storage_path is not None else os.path.basename(os.fspath(path))


@contextmanager
def media_files(destination: Any, *, keep_inline: bool = False) -> Iterator[MediaExtractor | None]:
    """Yield a ``MediaExtractor`` writing into ``destination`` (``None`` when there is none); publish on success.

    On an error every file written so far is removed, and nothing is published.
    """
    if destination is None:
        yield None
        return
    folder = _Folder(destination)

    def write_file(name: str, pieces: Iterator[bytes]) -> str:
        stream = folder.new_shard(name)
        for piece in pieces:
            stream.write(piece)
        folder.close_current()
        return str(folder.written[-1][1])

    try:
        yield MediaExtractor(write_file, keep_inline=keep_inline)
    except BaseException:
        folder.discard()
        raise
    folder.close_current()
    folder.publish()
