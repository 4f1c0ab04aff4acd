"""Open what users pass as a source or destination: a local path, a URI, an ObjectStoragePath, a file object."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

from airflow_provider_gemini_batch.batch_input import FILE_LIMIT_BYTES
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.idempotency import key_marker
from airflow_provider_gemini_batch.models import Batch

# The Files API's documented limit on one input file (docs/protocol.md "Limits").
MAX_UPLOAD_BYTES = FILE_LIMIT_BYTES
_SPOOL_CHUNK_BYTES = 8 * 1024 * 1024
# zlib level 3: on the benchmark's results about 2.5x the speed of gzip's default level 6, for 8 % more bytes.
_GZIP_LEVEL = 3
_RESULTS_SUFFIXES = (".jsonl", ".jsonl.gz")
_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_STEM_CHARACTERS = 60
# The submit operator's key marker, "(airflow:<key>)", at the end of a display name (idempotency.key_marker).
_MARKER_START, _MARKER_END = key_marker("\0").split("\0")


def as_storage_path(location: Any) -> Any:
    """Return an ``ObjectStoragePath`` for a URI (``s3://...``, ``file://...``) or for one already given."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(location, ObjectStoragePath):
        return location
    if isinstance(location, str) and "://" in location:
        return ObjectStoragePath(location)
    return None


@contextmanager
def open_source(source: Any) -> Iterator[tuple[BinaryIO, int, str]]:
    """Yield ``(seekable binary stream, size in bytes, default display name)`` for an upload source.

    A stream that cannot seek (a resumed upload goes back to where the server says it stopped) is
    spooled to a temporary file on disk first, so memory never holds the whole file.
    """
    storage_path = as_storage_path(source)
    if storage_path is not None:
        with storage_path.open("rb") as stream:
            checked = _checked(stream, int(storage_path.stat().st_size), storage_path.name)  # before any copy
            if _seekable(stream):
                yield checked
            else:
                with _spooled(stream) as (spool, size):
                    yield _checked(spool, size, storage_path.name)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise GeminiBatchInputError(f"Upload source {path!r} is not a file.")
        with open(path, "rb") as stream:
            yield _checked(stream, os.path.getsize(path), os.path.basename(path))
    elif hasattr(source, "read"):
        name = os.path.basename(str(getattr(source, "name", "") or "")) or "upload.jsonl"
        stream = cast(BinaryIO, source)
        if _seekable(stream):
            start = stream.tell()
            size = stream.seek(0, io.SEEK_END) - start
            stream.seek(start)
            yield _checked(stream, size, name)
        else:
            with _spooled(stream) as (spool, size):
                yield _checked(spool, size, name)
    else:
        raise GeminiBatchInputError(
            f"Cannot upload a {type(source).__name__}: pass a path, a URI, an ObjectStoragePath or a binary file."
        )


@contextmanager
def _spooled(stream: BinaryIO) -> Iterator[tuple[BinaryIO, int]]:
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(stream, spool, _SPOOL_CHUNK_BYTES)
        size = spool.tell()
        spool.seek(0)
        yield cast(BinaryIO, spool), size


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _checked(stream: BinaryIO, size: int, name: str) -> tuple[BinaryIO, int, str]:
    if size > MAX_UPLOAD_BYTES:
        raise GeminiBatchInputError(
            f"{name!r} is {size} bytes, over the Files API's limit of {MAX_UPLOAD_BYTES} bytes (2 GB) per "
            "input file: split the requests into several batches."
        )
    return stream, size, name


@contextmanager
def open_destination(destination: Any, *, compress: bool = False) -> Iterator[BinaryIO]:
    """Open a local path or an ``ObjectStoragePath`` for binary writing; the file appears only when complete.

    The bytes go to ``.<name>.partial-<random>`` in the destination's folder, which is moved into place
    when the ``with`` block ends without an error. On an error the temporary file is removed and the
    destination is left as it was, so a downstream load never picks up an empty or partial file.
    Parent folders are created.

    :param compress: write gzip (the stream yielded compresses; the header names the file without
        ``.gz`` and carries no time, so the same bytes give the same file).
    """
    storage_path = as_storage_path(destination)
    if storage_path is not None:
        storage_path.parent.mkdir(parents=True, exist_ok=True)
        partial = storage_path.parent / _partial_name(storage_path.name)
        try:
            with partial.open("wb") as stream, _compressed(stream, storage_path.name, compress) as out:
                yield out
            partial.rename(storage_path)  # fsspec: a rename where the store has one, else copy + delete
        except BaseException:
            _remove_quietly(partial.unlink)
            raise
    elif isinstance(destination, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(destination))
        folder, name = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        local_partial = os.path.join(folder, _partial_name(name))
        try:
            with open(local_partial, "xb") as stream, _compressed(stream, name, compress) as out:  # honours the umask
                yield out
            os.replace(local_partial, path)
        except BaseException:
            _remove_quietly(lambda: os.remove(local_partial))
            raise
    else:
        raise GeminiBatchInputError(
            f"Cannot write to a {type(destination).__name__}: pass a local path, a URI or an ObjectStoragePath."
        )


@contextmanager
def _compressed(stream: BinaryIO, name: str, compress: bool) -> Iterator[BinaryIO]:
    if not compress:
        yield stream
        return
    with gzip.GzipFile(
        filename=name.removesuffix(".gz"), mode="wb", fileobj=stream, compresslevel=_GZIP_LEVEL, mtime=0
    ) as out:
        yield cast(BinaryIO, out)


def results_path(destination: Any, batch: Batch) -> Any:
    """Where ``batch``'s results go: ``destination`` when it ends in ``.jsonl`` or ``.jsonl.gz``, else a file in it.

    In a folder the file is named ``<display name>-<job id>.jsonl``: the display name without the
    submit operator's key marker, cut to 60 characters and cleaned so that it cannot leave the folder.
    The same job always gets the same name, so downloading it again finds its own file: the download
    skips it when its completeness note says it is whole (``skip_if_complete``), else replaces it.
    """
    if not destination:
        raise GeminiBatchInputError(
            "destination is empty: pass a folder, or a file path ending in .jsonl or .jsonl.gz."
        )
    if str(destination).lower().endswith(_RESULTS_SUFFIXES):
        return destination
    display_name = (batch.display_name or "").rstrip()
    if display_name.endswith(_MARKER_END) and _MARKER_START in display_name:
        display_name = display_name[: display_name.rindex(_MARKER_START)]
    stem = _UNSAFE_FILE_CHARACTERS.sub("_", display_name).strip("._-")[:_STEM_CHARACTERS].rstrip("._-") or "batch"
    file_name = f"{stem}-{batch.id}.jsonl"
    storage_path = as_storage_path(destination)
    if storage_path is not None:
        return storage_path / file_name
    folder = os.path.realpath(os.fspath(destination))
    path = os.path.realpath(os.path.join(folder, file_name))
    if os.path.dirname(path) != folder:
        raise GeminiBatchInputError(f"The results file name {file_name!r} would leave {folder!r}; refusing to write.")
    return path


def _partial_name(name: str) -> str:
    return f".{name}.partial-{secrets.token_hex(6)}"


def _remove_quietly(remove: Callable[[], object]) -> None:
    # Cleanup on the way out of an error: never hide that error behind a failed (or needless) removal.
    with contextlib.suppress(Exception):
        remove()
