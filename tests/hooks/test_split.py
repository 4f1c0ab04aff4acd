"""Splitting one input into shards under byte, request and token limits (``GeminiBatchHook.split_input``)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.block_check import BlockCheck
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook, _split
from airflow_provider_gemini_batch.sharding import ShardLimits, estimate_tokens


def line(key: str, text: str = "hello") -> bytes:
    return json.dumps({"key": key, "request": {"contents": [{"parts": [{"text": text}]}]}}).encode() + b"\n"


def write_input(path: Path, count: int, text: str = "hello") -> list[bytes]:
    lines = [line(f"k{index}", text) for index in range(count)]
    path.write_bytes(b"".join(lines))
    return lines


def read_shards(paths: list[str]) -> list[list[dict[str, Any]]]:
    return [[json.loads(row) for row in Path(path).read_bytes().splitlines()] for path in paths]


@pytest.fixture
def hook() -> GeminiBatchHook:
    return GeminiBatchHook()


def test_max_requests_cuts_shards_and_keeps_every_line_once_in_order(hook: GeminiBatchHook, tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl"
    write_input(source, 10)

    paths = hook.split_input(source, tmp_path / "shards", max_requests=4)

    assert [Path(path).name for path in paths] == ["shard-00001.jsonl", "shard-00002.jsonl", "shard-00003.jsonl"]
    shards = read_shards(paths)
    assert [len(shard) for shard in shards] == [4, 4, 2]
    assert [row["key"] for shard in shards for row in shard] == [f"k{index}" for index in range(10)]


def test_max_bytes_is_never_exceeded(hook: GeminiBatchHook, tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl"
    lines = write_input(source, 20)
    limit = len(lines[0]) * 3 + 5

    paths = hook.split_input(str(source), str(tmp_path / "shards"), max_bytes=limit)

    sizes = [Path(path).stat().st_size for path in paths]
    assert len(paths) == 7
    assert all(size <= limit for size in sizes)
    assert sum(sizes) == source.stat().st_size


def test_max_tokens_uses_the_documented_estimate(hook: GeminiBatchHook, tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl"
    lines = write_input(source, 9, text="x" * 400)
    per_line = estimate_tokens(lines[0])
    assert per_line == -(-(len(lines[0]) - 1) // 4), "a quarter of the line's bytes, rounded up"

    paths = hook.split_input(source, tmp_path / "shards", max_tokens=per_line * 2)

    assert [len(shard) for shard in read_shards(paths)] == [2, 2, 2, 2, 1]


def test_a_line_longer_than_max_bytes_is_an_error_naming_it_and_nothing_is_written(
    hook: GeminiBatchHook, tmp_path: Path
) -> None:
    source = tmp_path / "input.jsonl"
    lines = [line("a"), line("b"), line("long", "y" * 500), line("c")]
    source.write_bytes(b"".join(lines))

    with pytest.raises(GeminiBatchInputError, match=r"line 3: .*over max_bytes") as raised:
        hook.split_input(source, tmp_path / "shards", max_bytes=200)

    assert str(len(lines[2])) in str(raised.value)
    assert not (tmp_path / "shards").exists() or not any((tmp_path / "shards").iterdir())


def test_a_line_over_max_tokens_is_an_error_naming_it(hook: GeminiBatchHook, tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl"
    source.write_bytes(line("a") + line("big", "z" * 4000))

    with pytest.raises(GeminiBatchInputError, match=r"line 2: .*max_tokens=100"):
        hook.split_input(source, tmp_path / "shards", max_tokens=100)


def test_bad_lines_are_named_with_their_numbers_and_nothing_is_published(hook: GeminiBatchHook, tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl"
    source.write_bytes(line("a") + b"{not json\n" + line("b") + b'{"key": "c"}\n')
    shards = tmp_path / "shards"

    with pytest.raises(GeminiBatchInputError) as raised:
        hook.split_input(source, shards, max_requests=1)

    message = str(raised.value)
    assert "line 2: not valid JSON" in message
    assert "line 4: no 'request' object" in message
    assert not shards.exists() or list(shards.iterdir()) == []


def test_keys_must_be_unique_across_shards(hook: GeminiBatchHook, tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl"
    source.write_bytes(line("a") + line("b") + line("c") + line("a"))
    shards = tmp_path / "shards"

    with pytest.raises(GeminiBatchInputError, match=r"line 4: duplicate key 'a' \(first on line 1\)"):
        hook.split_input(source, shards, max_requests=2)

    assert not shards.exists() or list(shards.iterdir()) == []


def test_records_are_split_too(hook: GeminiBatchHook, tmp_path: Path) -> None:
    records = [{"id": index, "contents": [{"parts": [{"text": f"q{index}"}]}]} for index in range(5)]

    paths = hook.split_input(records, tmp_path / "shards", max_requests=2, key_field="id")

    shards = read_shards(paths)
    assert [len(shard) for shard in shards] == [2, 2, 1]
    assert shards[0][0] == {"key": "0", "request": {"contents": [{"parts": [{"text": "q0"}]}]}}


def test_object_storage_destination(hook: GeminiBatchHook, tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl"
    write_input(source, 5)

    paths = hook.split_input(f"file://{source}", f"file://{tmp_path}/shards", max_requests=3)

    assert paths == [f"file://{tmp_path}/shards/shard-00001.jsonl", f"file://{tmp_path}/shards/shard-00002.jsonl"]
    assert len(read_shards([path.removeprefix("file://") for path in paths])[1]) == 2


def test_default_limits_are_a_margin_under_2_gb_and_none_else() -> None:
    limits = ShardLimits()
    assert 1.8 * 1024**3 < limits.max_bytes < 2 * 1024**3
    assert (limits.max_requests, limits.max_tokens) == (None, None)


@pytest.mark.parametrize(
    ("limits", "fix"),
    [
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": 3 * 1024**3}, "2 GB"),
        ({"max_requests": 0}, "max_requests"),
        ({"max_tokens": -5}, "max_tokens"),
    ],
)
def test_bad_limits_are_refused_before_reading(
    hook: GeminiBatchHook, tmp_path: Path, limits: dict[str, int], fix: str
) -> None:
    with pytest.raises(GeminiBatchInputError, match=fix):
        hook.split_input(tmp_path / "missing.jsonl", tmp_path / "shards", **limits)


class TestCopyingFromALocalSource:
    """A local source split into a local folder: checked blocks are copied file to file by the kernel
    (``os.copy_file_range``), which this machine does several times faster than writing them again."""

    @pytest.fixture
    def source(self, tmp_path: Path) -> Path:
        source = tmp_path / "input.jsonl"
        write_input(source, 3000, text="words " * 40)
        return source

    def test_checked_blocks_are_copied_by_the_kernel_and_the_shards_are_the_input_byte_for_byte(
        self, hook: GeminiBatchHook, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        copied: list[int] = []
        real = os.copy_file_range

        def counting(src: int, dst: int, count: int, offset_src: int | None = None, *rest: Any) -> int:
            done = real(src, dst, count, offset_src, *rest)
            copied.append(done)
            return done

        monkeypatch.setattr(_split.os, "copy_file_range", counting)
        monkeypatch.setattr(_split, "_BLOCK_SIZE", 64 * 1024)

        paths = hook.split_input(source, tmp_path / "shards", max_bytes=300_000, max_requests=1000)

        assert b"".join(Path(path).read_bytes() for path in paths) == source.read_bytes()
        assert len(paths) >= 3
        # Most bytes were copied; the lines around each cut went through the line by line path.
        assert sum(copied) > source.stat().st_size // 2

    @pytest.mark.parametrize("error", [errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP])
    def test_a_filesystem_that_cannot_copy_gets_the_bytes_written_instead(
        self, error: int, hook: GeminiBatchHook, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[int] = []
        real = os.copy_file_range

        def half_then_fail(src: int, dst: int, count: int, offset_src: int | None = None, *rest: Any) -> int:
            calls.append(count)
            if len(calls) == 1:
                return real(src, dst, count // 2, offset_src, *rest)  # A short copy, then the failure.
            raise OSError(error, os.strerror(error))

        monkeypatch.setattr(_split.os, "copy_file_range", half_then_fail)
        monkeypatch.setattr(_split, "_BLOCK_SIZE", 64 * 1024)

        paths = hook.split_input(source, tmp_path / "shards", max_requests=700)

        assert b"".join(Path(path).read_bytes() for path in paths) == source.read_bytes()
        assert len(calls) == 2  # After the failure, copying is not tried again.

    @pytest.mark.parametrize("repeating", [False, True], ids=["new keys", "a repeated key"])
    def test_a_source_changed_while_it_is_split_is_an_error_and_nothing_is_published(
        self, repeating: bool, hook: GeminiBatchHook, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The change is named even when what was appended has problems of its own."""
        real = os.copy_file_range
        late = iter(lambda: 0, 1) if repeating else iter(range(1000))

        def writer_appends(src: int, dst: int, count: int, offset_src: int | None = None, *rest: Any) -> int:
            with source.open("ab") as more:  # Another process still writing the input.
                more.write(line(f"late-{next(late)}"))
            return real(src, dst, count, offset_src, *rest)

        monkeypatch.setattr(_split.os, "copy_file_range", writer_appends)
        monkeypatch.setattr(_split, "_BLOCK_SIZE", 64 * 1024)

        with pytest.raises(GeminiBatchInputError, match=r"'input.jsonl' changed while it was split"):
            hook.split_input(source, tmp_path / "shards", max_requests=700)
        assert not list((tmp_path / "shards").glob("*"))


def appending_while_split(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process appends a line to ``source`` as the split places its first (fault injection at the planner)."""
    real = _split.ShardPlanner.starts_new_shard
    appended: list[bool] = []

    def appending(self: Any, size: int, tokens: int) -> bool:
        if not appended:
            appended.append(True)
            with source.open("ab") as more:
                more.write(line("late"))
        return bool(real(self, size, tokens))

    monkeypatch.setattr(_split.ShardPlanner, "starts_new_shard", appending)
    monkeypatch.setattr(BlockCheck, "keys", lambda *_args: None)  # Line by line: every line meets the planner.


def test_a_local_source_changed_while_it_is_split_is_refused_whatever_the_destination(
    hook: GeminiBatchHook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "input.jsonl"
    write_input(source, 50)
    appending_while_split(source, monkeypatch)

    with pytest.raises(GeminiBatchInputError, match=r"'input.jsonl' changed while it was split"):
        hook.split_input(source, f"file://{tmp_path}/shards", max_requests=10)
    assert not (tmp_path / "shards").exists() or not list((tmp_path / "shards").glob("*"))


def test_an_interrupt_is_not_turned_into_an_input_error_by_the_change_check(
    hook: GeminiBatchHook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task timeout or kill (not an ``Exception``) stays what it is, even when the source changed too."""
    source = tmp_path / "input.jsonl"
    write_input(source, 50)
    appending_while_split(source, monkeypatch)
    real = _split._Splitter.line
    calls = iter(range(1000))

    def interrupted(self: Any, text: bytes) -> None:
        if next(calls) == 30:
            raise KeyboardInterrupt
        real(self, text)

    monkeypatch.setattr(_split._Splitter, "line", interrupted)
    with pytest.raises(KeyboardInterrupt):
        hook.split_input(source, tmp_path / "shards", max_requests=10)
    assert not list((tmp_path / "shards").glob("*"))
