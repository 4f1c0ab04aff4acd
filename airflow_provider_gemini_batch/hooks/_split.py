"""Split one batch input into shard files: read line by line, validate, cut, publish only when all is good.

The decisions are ``sharding.py``'s and the checks ``batch_input.py``'s; this module reads the source
(a local path, a URI, an ``ObjectStoragePath``, or records) and writes shards into a folder. Shards
are written under hidden temporary names and renamed into place only after the whole input passed,
so a bad input leaves no shard behind that a downstream task could mistake for work.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol

import pydantic_core

from airflow_provider_gemini_batch.batch_input import ItemChecker, parse_records, records_to_jsonl
from airflow_provider_gemini_batch.block_check import BlockCheck
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.hooks._sources import as_storage_path
from airflow_provider_gemini_batch.models import BatchKind
from airflow_provider_gemini_batch.sharding import (
    KeyLedger,
    ShardLimits,
    ShardPlanner,
    estimate_block_tokens,
    estimate_tokens,
)

_READ_BUFFER = 1024 * 1024
#: How much is read at a time (at least: whole lines): lines are checked and written a block at a time.
_BLOCK_SIZE = 4 * 1024 * 1024
_WRITE_BUFFER = 4 * 1024 * 1024


def split_jsonl(
    source: Any,
    destination: Any,
    limits: ShardLimits,
    *,
    kind: BatchKind | None = None,
    key_field: str = "key",
    prefix: str = "shard",
) -> list[str]:
    """Split ``source`` into ``<prefix>-00001.jsonl``, ... in ``destination``; return their paths.

    :param source: a JSONL file (local path, URI or ``ObjectStoragePath``), or records (a list of
        dicts, as for ``records_to_jsonl``, or a JSON string of them).
    :raises GeminiBatchInputError: naming every bad line, a line no shard can hold, repeated keys;
        no shard is published then.
    """
    if not prefix or os.sep in prefix or "/" in prefix or prefix.startswith("."):
        raise GeminiBatchInputError(f"prefix {prefix!r} must be a plain file name start, such as 'shard'.")
    with _jsonl_source(source, key_field, kind) as (stream, name):
        folder = _Folder(destination)
        watch = _SourceWatch(name, _local_file(stream))
        copy_from = watch.fd if folder.local is not None and hasattr(os, "copy_file_range") else None
        try:
            try:
                _write_shards(stream, name, folder, limits, kind, prefix, copy_from)
            except Exception:
                watch.check()  # A source that changed explains any other problem found in it.
                raise
            watch.check()
        except BaseException:
            folder.discard()
            raise
    return folder.publish()


def _local_file(stream: object) -> int | None:
    """The descriptor of a local source file (blocks can be copied from it, and it can be watched)."""
    if not isinstance(stream, (io.BufferedReader, io.FileIO)):
        return None
    try:
        return stream.fileno()
    except (OSError, ValueError):
        return None


class _SourceWatch:
    """Refuse a local source file that changed during the split (its size or modification time): its
    blocks may be copied from the file after they were checked, and a file still being written is not
    a whole input. A rewrite that keeps both the size and the modification time is not seen."""

    def __init__(self, name: str, fd: int | None) -> None:
        self.name, self.fd = name, fd
        self.before = os.fstat(fd) if fd is not None else None

    def check(self) -> None:
        if self.fd is None or self.before is None:
            return
        before, after = self.before, os.fstat(self.fd)
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise GeminiBatchInputError(
                f"{self.name} changed while it was split ({before.st_size} bytes, then {after.st_size}): nothing "
                "was published. Split it again once whatever writes it has finished."
            )


class _LineSource(Protocol):
    """What the splitter reads: lines, a block of them at a time, and a way back to the start (for the
    second look at repeated keys)."""

    def readlines(self, hint: int, /) -> list[bytes]: ...

    def __iter__(self) -> Iterator[bytes]: ...

    def seek(self, offset: int, /) -> int: ...


def _write_shards(
    stream: _LineSource,
    name: str,
    folder: _Folder,
    limits: ShardLimits,
    kind: BatchKind | None,
    prefix: str,
    copy_from: int | None,
) -> None:
    splitter = _Splitter(name, folder, limits, kind, prefix, copy_from)
    splitter.read(stream)
    folder.close_current()
    splitter.checker.problems.raise_if_any(splitter.count)
    repeated = splitter.ledger.repeated_hashes()
    if repeated:
        stream.seek(0)
        _report_repeated_keys(stream, name, kind, repeated)


class _Splitter:
    """One pass over the input: check every line, place it in a shard, write it, remember its key.

    The input is read in blocks of whole lines (``readlines``). A block that ``BlockCheck`` vouches for and that fits
    the current shard whole is placed and written at once; any other block (one with a problem, or
    one a shard cut falls in) goes line by line, where problems are named with their line numbers.
    The shards are the same either way. With ``copy_from`` (a local source file, read from its
    start), a placed block is copied from the source file into the shard by the kernel rather than
    written from memory again; the caller checks afterwards that the file did not change meanwhile.
    """

    def __init__(
        self,
        name: str,
        folder: _Folder,
        limits: ShardLimits,
        kind: BatchKind | None,
        prefix: str,
        copy_from: int | None = None,
    ) -> None:
        self.checker = ItemChecker(name, "line", kind, track_keys=False)
        self.blocks = BlockCheck(kind)
        self.planner = ShardPlanner(limits)
        self.ledger = KeyLedger()
        self.folder, self.limits, self.prefix = folder, limits, prefix
        self.copy_from = copy_from
        self.out: IO[bytes] | None = None
        self.number = 0  # Lines read.
        self.count = 0  # Requests (lines that are not blank).
        self.offset = 0  # Bytes read, which is where the next line starts in the source.

    def read(self, stream: _LineSource) -> None:
        while lines := stream.readlines(_BLOCK_SIZE):
            self.block(lines)

    def block(self, lines: list[bytes]) -> None:
        """Place whole ``lines`` at once when they all pass and fit the current shard; else line by line."""
        if lines[-1].endswith(b"\n"):
            block = b"".join(lines)
            keys = self.blocks.keys(lines, block)
            if keys is not None and self._place_block(lines, block, keys):
                self.offset += len(block)
                return
        for line in lines:
            self.line(line)
            self.offset += len(line)

    def _place_block(self, lines: list[bytes], block: bytes, keys: list[str]) -> bool:
        size, limits = len(block), self.limits
        tokens = 0
        if size > limits.max_bytes:
            return False  # Some line may be too long: line by line names it.
        if limits.max_tokens is not None:
            tokens, largest = estimate_block_tokens(lines)
            if largest > limits.max_tokens:
                return False
        new_shard = self.planner.place_block(size, len(keys), tokens)
        if new_shard is None:
            return False
        self.number += len(keys)
        self.count += len(keys)
        self.ledger.add_many(keys)
        if not self.checker.problems.count:  # After a problem, only checking goes on; nothing is written.
            if new_shard:
                self.out = self.folder.new_shard(f"{self.prefix}-{self.planner.shard_count:05d}.jsonl")
            assert self.out is not None
            if self.copy_from is None:
                self.out.write(block)
            elif not _copy_or_write(self.copy_from, self.offset, block, self.out):
                self.copy_from = None  # This file system cannot copy: write from now on.
        return True

    def line(self, line: bytes) -> None:
        """Check one line, place it, write it."""
        self.number += 1
        number, checker = self.number, self.checker
        try:
            item = pydantic_core.from_json(line, cache_strings="keys")
        except ValueError as exc:
            if not line.strip():
                return
            self.count += 1
            checker.problems.add("line", number, f"not valid JSON ({str(exc).split(' at line ')[0]})")
            return
        self.count += 1
        if not checker.check(item, number):
            return
        self.ledger.add(item["key"])
        if not line.endswith(b"\n"):
            line += b"\n"
        size, tokens = len(line), estimate_tokens(line)
        problem = self.planner.problem(size, tokens)
        if problem:
            checker.problems.add("line", number, problem)
            return
        if checker.problems.count:
            return  # Still validating, to name every problem; nothing more is written.
        if self.planner.starts_new_shard(size, tokens):
            self.out = self.folder.new_shard(f"{self.prefix}-{self.planner.shard_count:05d}.jsonl")
        assert self.out is not None
        self.out.write(line)


def _copy_or_write(source: int, offset: int, block: bytes, out: IO[bytes]) -> bool:
    """Put ``block``, found at ``offset`` in ``source``, into ``out``: copied file to file by the kernel,
    and whatever it could not copy written from memory. ``False`` when copying failed (do not try again).
    """
    out.flush()  # Lines written before go first; the copy appends at the file's position.
    done, size, copying = 0, len(block), True
    try:
        while done < size:
            copied = os.copy_file_range(source, out.fileno(), size - done, offset + done)
            if not copied:
                break  # The source is shorter than when it was read: the caller finds it changed.
            done += copied
    except OSError:  # EXDEV, ENOSYS, EOPNOTSUPP, ...: file systems that cannot copy between these files.
        copying = False
    if done < size:
        out.write(memoryview(block)[done:])
    return copying


def _report_repeated_keys(stream: _LineSource, name: str, kind: BatchKind | None, suspects: set[int]) -> None:
    """Read the input again, remembering only keys whose hash repeated, and name the lines that repeat them."""
    checker = ItemChecker(name, "line", kind)
    parse, hash_of = pydantic_core.from_json, KeyLedger.hash_of
    count = 0
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        count += 1
        item = parse(line)
        if hash_of(item["key"]) in suspects:
            checker.check(item, number)
    checker.problems.raise_if_any(count)


@contextmanager
def _jsonl_source(source: Any, key_field: str, kind: BatchKind | None) -> Iterator[tuple[_LineSource, str]]:
    """Open ``source`` as a seekable JSONL byte stream; records are validated into a temporary file first."""
    storage_path = as_storage_path(source)
    if storage_path is not None:
        with storage_path.open("rb") as stream:
            if stream.seekable():
                yield _ReadlineStream(stream), repr(storage_path.name)
                return
        with tempfile.TemporaryFile() as spool:
            with storage_path.open("rb") as stream:
                for chunk in iter(lambda: stream.read(_READ_BUFFER), b""):
                    spool.write(chunk)
            spool.seek(0)
            yield spool, repr(storage_path.name)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise GeminiBatchInputError(f"The split source {path!r} is not a file.")
        with open(path, "rb", buffering=_READ_BUFFER) as stream:
            yield stream, repr(os.path.basename(path))
    elif isinstance(source, Iterable):
        with tempfile.TemporaryFile() as spool:
            records_to_jsonl(parse_records(source), spool, key_field=key_field, kind=kind)
            spool.seek(0)
            yield spool, "records"
    else:
        raise GeminiBatchInputError(
            f"Cannot split a {type(source).__name__}: pass a path, a URI, an ObjectStoragePath or a list of records."
        )


class _ReadlineStream:
    """An object-storage file iterated line by line through ``readline``.

    Airflow 3.0's ``ObjectStoragePath`` wraps its files in an object that cannot be iterated
    (``'LocalFileOpener' object is not subscriptable``); ``readline`` works on every fsspec file.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.stream.readline, b"")

    def readlines(self, hint: int) -> list[bytes]:
        lines, size = [], 0
        while size < hint and (line := self.stream.readline()):
            lines.append(line)
            size += len(line)
        return lines

    def seek(self, offset: int) -> int:
        return int(self.stream.seek(offset))


class _Folder:
    """Shard files in ``destination``: written under hidden names, renamed into place by ``publish``."""

    def __init__(self, destination: Any) -> None:
        if destination is None or destination == "":
            raise GeminiBatchInputError("destination is empty: pass the folder the shards go to.")
        self.storage_path = as_storage_path(destination)
        self.local = None if self.storage_path is not None else os.path.abspath(os.fspath(destination))
        self.token = secrets.token_hex(6)
        self.written: list[tuple[Any, Any]] = []  # (partial, final)
        self.current: IO[bytes] | None = None
        self._made = False

    def _make(self) -> None:
        if self._made:
            return
        if self.storage_path is not None:
            self.storage_path.mkdir(parents=True, exist_ok=True)
        else:
            assert self.local is not None
            os.makedirs(self.local, exist_ok=True)
        self._made = True

    def new_shard(self, file_name: str) -> IO[bytes]:
        self.close_current()
        self._make()
        hidden = f".{file_name}.partial-{self.token}"
        if self.storage_path is not None:
            partial, final = self.storage_path / hidden, self.storage_path / file_name
            self.current = partial.open("wb")
        else:
            assert self.local is not None
            partial, final = os.path.join(self.local, hidden), os.path.join(self.local, file_name)
            self.current = open(partial, "xb", buffering=_WRITE_BUFFER)  # noqa: SIM115 (closed by close_current)
        self.written.append((partial, final))
        return self.current

    def close_current(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None

    def discard(self) -> None:
        """Remove every shard written so far; never raise over the error that led here."""
        with contextlib.suppress(Exception):
            self.close_current()
        for partial, _final in self.written:
            with contextlib.suppress(Exception):
                partial.unlink() if self.storage_path is not None else os.remove(partial)

    def publish(self) -> list[str]:
        """Rename each shard into place; return their paths (URIs for object storage)."""
        paths = []
        for partial, final in self.written:
            if self.storage_path is not None:
                partial.rename(final)
            else:
                os.replace(partial, final)
            paths.append(str(final))
        return paths
