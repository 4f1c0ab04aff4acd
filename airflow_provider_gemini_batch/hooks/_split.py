"""Split one batch input into shard files: read line by line, validate, cut, publish only when all is good.

The decisions are ``sharding.py``'s and the checks ``batch_input.py``'s; this module reads the source
(a local path, a URI, an ``ObjectStoragePath``, or records) and writes shards into a folder. Shards
are written under hidden temporary names and renamed into place only after the whole input passed,
so a bad input leaves no shard behind that a downstream task could mistake for work.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol

import pydantic_core

from airflow_provider_gemini_batch.batch_input import ItemChecker, parse_records, records_to_jsonl
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.hooks._sources import as_storage_path
from airflow_provider_gemini_batch.models import BatchKind
from airflow_provider_gemini_batch.sharding import KeyLedger, ShardLimits, ShardPlanner, estimate_tokens

_READ_BUFFER = 1024 * 1024
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
        try:
            _write_shards(stream, name, folder, limits, kind, prefix)
        except BaseException:
            folder.discard()
            raise
    return folder.publish()


class _LineSource(Protocol):
    """What the splitter reads: lines, and a way back to the start (for the second look at repeated keys)."""

    def __iter__(self) -> Iterator[bytes]: ...

    def seek(self, offset: int, /) -> int: ...


def _write_shards(
    stream: _LineSource, name: str, folder: _Folder, limits: ShardLimits, kind: BatchKind | None, prefix: str
) -> None:
    checker = ItemChecker(name, "line", kind, track_keys=False)
    add_problem = checker.problems.add
    planner = ShardPlanner(limits)
    ledger = KeyLedger()
    parse = pydantic_core.from_json
    out: IO[bytes] | None = None
    count = 0
    for number, line in enumerate(stream, start=1):
        try:
            item = parse(line, cache_strings="keys")
        except ValueError as exc:
            if not line.strip():
                continue
            count += 1
            add_problem("line", number, f"not valid JSON ({str(exc).split(' at line ')[0]})")
            continue
        count += 1
        if not checker.check(item, number):
            continue
        ledger.add(item["key"])
        if not line.endswith(b"\n"):
            line += b"\n"
        size, tokens = len(line), estimate_tokens(line)
        problem = planner.problem(size, tokens)
        if problem:
            add_problem("line", number, problem)
            continue
        if checker.problems.count:
            continue  # Still validating, to name every problem; nothing more is written.
        if planner.starts_new_shard(size, tokens):
            out = folder.new_shard(f"{prefix}-{planner.shard_count:05d}.jsonl")
        assert out is not None
        out.write(line)
    folder.close_current()
    checker.problems.raise_if_any(count)
    repeated = ledger.repeated_hashes()
    if repeated:
        stream.seek(0)
        _report_repeated_keys(stream, name, kind, repeated)


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
