"""The splitter's fast path (``block_check.BlockCheck``) vouches only for what the line-by-line checks accept."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pydantic_core
import pytest

from airflow_provider_gemini_batch.batch_input import ItemChecker
from airflow_provider_gemini_batch.block_check import BlockCheck
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook, _split
from airflow_provider_gemini_batch.models import BatchKind
from airflow_provider_gemini_batch.sharding import KeyLedger, ShardLimits, ShardPlanner

GOOD = b'{"key":"a","request":{"contents":[{"parts":[{"text":"hi"}]}]}}'
GOOD_B = b'{"key":"b","request":{"contents":[{"role":"user","parts":[]}]},"metadata":{"x":1}}'
EMBED = b'{"key":"e","request":{"content":{"parts":[{"text":"hi"}]}}}'

#: Blocks the fast path must decline or, if it accepts them, that every line passes line by line.
TRICKY = [
    GOOD + b"\n" + GOOD_B + b"\n",
    GOOD + b"\r\n" + GOOD_B + b"\r\n",
    GOOD + b"\n\n" + GOOD_B + b"\n",  # a blank line
    GOOD + b"\n   \n" + GOOD_B + b"\n",  # a line of spaces
    b" " + GOOD + b"\n",  # leading whitespace
    GOOD + b" " + GOOD_B + b"\n",  # two values on one line
    GOOD + GOOD_B + b"\n",  # two values, no space
    GOOD + b"," + GOOD_B + b"\n",
    # Two values on one line next to a blank line: as many values as lines.
    GOOD + b" " + GOOD_B + b"\n\n",
    # A value spread over two lines next to a line of two values.
    b'{"key":"s","request":{"contents":[{"parts":[1\n2]}]}}\n' + GOOD + b" " + GOOD_B + b"\n",
    b'{"key":"s","request":{"contents":[{"parts":[{}\n{}]}]}}\n' + GOOD + GOOD_B + b"\n",
    b'{"key":"s","request":{"contents":[{"parts":[]}\n,{"parts":[]}]}}\n' + GOOD + GOOD_B + b"\n",
    b'{"key":"s","request":{"contents":[\n{"parts":[]}]}}\n' + GOOD + GOOD_B + b"\n",
    b'{"key":" ","request":{"contents":[{"parts":[]}]}}\n',  # a key of whitespace
    b'{"key":"","request":{"contents":[{"parts":[]}]}}\n',
    b'{"key":1,"request":{"contents":[{"parts":[]}]}}\n',
    b'{"request":{"contents":[{"parts":[]}]}}\n',
    b'{"key":"a","request":{"contents":[]}}\n',
    b'{"key":"a","request":{"contents":null}}\n',
    b'{"key":"a","request":{"contents":[{"parts":null}]}}\n',
    b'{"key":"a","request":{"contents":[{"parts":{}}]}}\n',
    b'{"key":"a","request":{"contents":[[]]}}\n',
    b'{"key":"a","request":{"contents":{"parts":[]}}}\n',
    b'{"key":"a","request":[]}\n',
    b'{"key":"a","request":{"contents":[{"parts":[]}],"x":"\xff"}}\n',  # invalid UTF-8
    b'{"key":"a","request":{"contents":[{"parts":[]}],"x":"\xc3\xa9"}}\n',  # valid UTF-8
    b'{"key":"a","request":{"contents":[{"parts":[]}],"x":"\\ud800"}}\n',
    b'{"key":"a","request":{"contents":[{"parts":[]}],"x":NaN}}\n',
    b'{"key":"a","request":{"contents":[{"parts":[]}],"x":[1,,2]}}\n',
    b'{"key":"a","key":"b","request":{"contents":[{"parts":[]}]}}\n',  # the last key counts, as line by line
    b'{"key":"a\tb","request":{"contents":[{"parts":[]}]}}\n',
    EMBED + b"\n",
    b"[]\n",
    b"null\n",
    b"}\n",
]


def check(blocks: BlockCheck, block: bytes) -> list[str] | None:
    """``BlockCheck.keys`` of ``block`` cut into lines as a binary file's ``readlines`` cuts them."""
    return blocks.keys([line + b"\n" for line in block.split(b"\n")[:-1]], block)


def line_by_line(block: bytes, kind: BatchKind | None) -> list[str] | None:
    """What ``ItemChecker`` makes of ``block`` read as lines: its keys, or ``None`` on any problem."""
    checker, keys = ItemChecker("test", "line", kind, track_keys=False), []  # Repeats: the ledger's.
    for number, line in enumerate(block.split(b"\n")[:-1], start=1):
        try:
            item = pydantic_core.from_json(line)
        except ValueError:
            return None
        if not checker.check(item, number):
            return None
        keys.append(item["key"])
    return keys


@pytest.mark.parametrize("kind", ["generate", "embed", None])
@pytest.mark.parametrize("block", TRICKY, ids=range(len(TRICKY)))
def test_the_fast_path_never_accepts_what_the_line_checks_refuse(block: bytes, kind: BatchKind | None) -> None:
    fast = check(BlockCheck(kind), block)
    if fast is not None:
        assert fast == line_by_line(block, kind)


def test_the_fast_path_vouches_for_plain_lines() -> None:
    assert check(BlockCheck("generate"), GOOD + b"\n" + GOOD_B + b"\r\n") == ["a", "b"]
    assert check(BlockCheck(None), GOOD + b"\n") == ["a"]
    assert check(BlockCheck("embed"), EMBED + b"\n") == ["e"]


def test_the_fast_path_declines_a_block_with_any_bad_line() -> None:
    assert check(BlockCheck("generate"), GOOD + b"\n" + b'{"key":"a","request":{"contents":[]}}\n') is None


def test_random_mutations_of_good_lines_are_never_accepted_when_the_line_checks_refuse_them() -> None:
    rng = random.Random(12)
    base = GOOD + b"\n" + GOOD_B + b"\n" + GOOD + b"\n"
    alphabet = b'{}[]",:\n \\ab0-'
    for _ in range(3000):
        mutated = bytearray(base)
        for _edit in range(rng.randint(1, 3)):
            position = rng.randrange(len(mutated))
            if rng.random() < 0.5:
                mutated[position] = rng.choice(alphabet)
            else:
                del mutated[position]
        block = bytes(mutated)
        if not block.endswith(b"\n"):
            block += b"\n"
        fast = check(BlockCheck(None), block)
        if fast is not None:
            assert fast == line_by_line(block, None), block


def test_a_planner_placing_blocks_cuts_where_one_placing_lines_does() -> None:
    rng = random.Random(5)
    sizes = [rng.randint(10, 200) for _ in range(400)]
    limits = ShardLimits(max_bytes=2000, max_requests=25, max_tokens=300)
    by_line = ShardPlanner(limits)
    cuts_by_line = [index for index, size in enumerate(sizes) if by_line.starts_new_shard(size, -(-size // 4))]
    by_block, cuts_by_block, index = ShardPlanner(limits), [], 0
    while index < len(sizes):
        group = sizes[index : index + rng.randint(1, 6)]
        placed = by_block.place_block(sum(group), len(group), sum(-(-size // 4) for size in group))
        if placed is None:
            for offset, size in enumerate(group):
                if by_block.starts_new_shard(size, -(-size // 4)):
                    cuts_by_block.append(index + offset)
        elif placed:
            cuts_by_block.append(index)
        index += len(group)
    assert cuts_by_block == cuts_by_line
    assert by_block.shard_count == by_line.shard_count


def test_a_ledger_fed_in_batches_finds_the_same_repeats_as_one_fed_key_by_key() -> None:
    keys = [f"k{index}" for index in range(5000)] + ["k17", "k4999", "k0"]
    one, many = KeyLedger(), KeyLedger()
    for key in keys:
        one.add(key)
    for start in range(0, len(keys), 333):
        many.add_many(keys[start : start + 333])
    many.add_many([])
    assert many.repeated_hashes() == one.repeated_hashes() == {hash("k17"), hash("k4999"), hash("k0")}


@pytest.mark.parametrize("block_size", [7, 64, 1000, 4 * 1024 * 1024])
def test_shards_and_errors_do_not_depend_on_how_the_input_is_read(
    block_size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    lines = [
        json.dumps({"key": f"k{index}", "request": {"contents": [{"parts": [{"text": "x" * rng.randint(0, 300)}]}]}})
        for index in range(600)
    ]
    source = tmp_path / "in.jsonl"
    # A blank line, then CRLF line ends, and no newline at the end.
    source.write_text("\n".join(lines[:300]) + "\n\n" + "\r\n".join(lines[300:]))
    monkeypatch.setattr(_split, "_BLOCK_SIZE", block_size)
    hook = GeminiBatchHook()
    paths = hook.split_input(source, tmp_path / f"shards-{block_size}", max_bytes=20_000, max_requests=70)
    shards = [Path(path).read_bytes() for path in paths]
    assert b"".join(shards).replace(b"\r\n", b"\n") == ("\n".join(lines) + "\n").encode()
    assert all(len(shard) <= 20_000 and shard.count(b"\n") <= 70 for shard in shards)
    expected = tmp_path / "expected"
    monkeypatch.setattr(_split, "_BLOCK_SIZE", 4 * 1024 * 1024)
    monkeypatch.setattr(BlockCheck, "keys", lambda *_args: None)  # Every line checked one by one.
    line_by_line_paths = hook.split_input(source, expected, max_bytes=20_000, max_requests=70)
    assert [Path(path).read_bytes() for path in line_by_line_paths] == shards

    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines[:100], '{"key": "k5", "request": {"contents": []}}', *lines[100:]]))
    monkeypatch.undo()
    monkeypatch.setattr(_split, "_BLOCK_SIZE", block_size)
    with pytest.raises(GeminiBatchInputError) as raised:
        hook.split_input(bad, tmp_path / f"bad-{block_size}")
    assert "line 101: 'request.contents' is empty" in str(raised.value)
    assert not list((tmp_path / f"bad-{block_size}").glob("*"))
    repeated = tmp_path / "repeated.jsonl"
    repeated.write_text("\n".join(lines + lines[7:8]))
    with pytest.raises(GeminiBatchInputError, match=r"line 601: duplicate key 'k7' \(first on line 8\)"):
        hook.split_input(repeated, tmp_path / f"repeated-{block_size}")
