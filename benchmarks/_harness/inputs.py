"""Generated batch input: JSONL files of an exact size or line count, and flat records, all deterministic."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

_VOCABULARY = (
    "summarize classify translate explain the a of customer review product order invoice shipping delay "
    "refund quality support ticket email report quarterly revenue growth churn risk model data pipeline "
    "airflow schedule batch request response json schema field value error retry timeout latency cost "
    "please answer briefly in one sentence list three reasons why how what which when where describe "
    "compare contrast sentiment positive negative neutral category label extract entities names dates"
)
_WORDS = _VOCABULARY.split()
_EXTRAS = ('"quoted"', "line\nbreak", "tab\there", "café", "naïve", "日本語", "emoji 🙂", "path\\to\\file", "50%")
_LINE_HEAD = '{"key": "request-'
_LINE_MIDDLE = '", "request": {"contents": [{"parts": [{"text": "'
_LINE_TAIL = '"}]}]}}\n'
_BLOCK_LINES = 16_384


@dataclass(frozen=True)
class JsonlFile:
    """A generated batch input file: where it is, its exact size, its SHA-256 and how many requests."""

    path: Path
    size_bytes: int
    sha256: str
    lines: int


def write_batch_jsonl(path: Path, size_bytes: int, *, seed: int = 0) -> JsonlFile:
    """Write a batch input file of exactly ``size_bytes``: one ``{"key", "request"}`` object per line.

    Lines are built a block at a time and written in one call each (about 8 s per GiB, mostly disk
    writes); the last line's prompt is padded so the size comes out exact.
    """
    pool = _prompt_pool(seed)
    longest = max(len(_line(10**12, text)) for text in pool)
    number = 0
    with path.open("wb") as out:
        writer = _HashingWriter(out)
        # Whole blocks while they surely fit, then single lines, leaving room for the padded last one.
        limit = size_bytes - 2 * longest
        while writer.written + len(block := _lines(pool, number, number + _BLOCK_LINES)) <= limit:
            writer.write(block)
            number += _BLOCK_LINES
        while writer.written + len(line := _lines(pool, number, number + 1)) <= limit:
            writer.write(line)
            number += 1
        padding = size_bytes - writer.written - len(_line(number, ""))
        if padding < 1:
            raise ValueError(f"{size_bytes} bytes is too small for a batch input file.")
        filler = (" ".join(_WORDS) + " ") * (padding // 100 + 1)
        writer.write(_line(number, filler[:padding]))
    return JsonlFile(path=path, size_bytes=writer.written, sha256=writer.hexdigest(), lines=number + 1)


def write_request_lines(path: Path, count: int, *, seed: int = 0) -> JsonlFile:
    """Write exactly ``count`` batch input lines (the same prompts as ``write_batch_jsonl``)."""
    pool = _prompt_pool(seed)
    with path.open("wb") as out:
        writer = _HashingWriter(out)
        for start in range(0, count, _BLOCK_LINES):
            writer.write(_lines(pool, start, min(count, start + _BLOCK_LINES)))
    return JsonlFile(path=path, size_bytes=writer.written, sha256=writer.hexdigest(), lines=count)


def prompt_records(count: int, *, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` flat records as a database query would return them: an int id and the request body."""
    pool = [json.loads(f'"{text}"') for text in _prompt_pool(seed)]
    for number in range(count):
        yield {"key": number, "contents": [{"parts": [{"text": pool[(number * 7919) % len(pool)]}]}]}


class _HashingWriter:
    """Write ASCII text to a binary file, keeping its SHA-256 and byte count."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._hasher = hashlib.sha256()
        self.written = 0

    def write(self, text: str) -> None:
        data = text.encode("ascii")
        self._out.write(data)
        self._hasher.update(data)
        self.written += len(data)

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


def _prompt_pool(seed: int, count: int = 4096) -> list[str]:
    """Prompts of 40 to 1500 characters, JSON-escaped (ASCII only, so characters equal bytes)."""
    rng = random.Random(seed)
    pool = []
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(int(rng.lognormvariate(3.6, 0.8)) + 6)]
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), rng.choice(_EXTRAS))
        text = " ".join(words)[:1500]
        pool.append(json.dumps(text)[1:-1])
    return pool


def _lines(pool: list[str], start: int, stop: int) -> str:
    """Lines ``start`` to ``stop`` (exclusive), each with its prompt picked from ``pool``."""
    return "".join([_line(n, pool[(n * 7919) % len(pool)]) for n in range(start, stop)])


def _line(number: int, text: str) -> str:
    return f"{_LINE_HEAD}{number}{_LINE_MIDDLE}{text}{_LINE_TAIL}"
