"""Where to cut one batch input into shards, and whether its keys are unique: pure, line by line.

The service takes at most 2 GB per input file and holds at most a model's enqueued-token limit of
input across a project's active jobs (``docs/protocol.md``, "Limits"), so a large input runs as
several jobs. ``ShardPlanner`` decides, one line at a time, where a new shard starts so that no
shard passes ``ShardLimits``; ``KeyLedger`` finds keys repeated across the whole input while keeping
8 bytes per key, not the keys; ``hooks/_split.py`` does the reading and writing.

Tokens are estimated, not counted (counting would cost an API call per request): a quarter of the
line's bytes, rounded up (``estimate_tokens``). For English prompts in JSON that errs high (the JSON
syntax and field names count too); text in scripts whose characters take 3 UTF-8 bytes and about one
token each (Chinese, Japanese) is counted low, so leave a margin under the limit there.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from airflow_provider_gemini_batch.batch_input import FILE_LIMIT_BYTES
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.settings import DEFAULT_SHARD_MAX_BYTES

__all__ = ["BYTES_PER_TOKEN", "KeyLedger", "ShardLimits", "ShardPlanner", "estimate_block_tokens", "estimate_tokens"]

#: The token estimate's divisor: one token per 4 bytes of the request line.
BYTES_PER_TOKEN = 4
_BUCKETS = 256
#: Keys are spread over the buckets by the top 8 bits of their 64-bit hash: the first hash of each bucket.
_BUCKET_STARTS = [(index << 56) - (1 << 63) for index in range(1, _BUCKETS)]


def estimate_tokens(line: bytes) -> int:
    """Estimated input tokens of one JSONL line: its bytes (without the newline) over 4, rounded up."""
    size = len(line)
    if line.endswith(b"\n"):
        size -= 2 if line.endswith(b"\r\n") else 1
    return -(-size // BYTES_PER_TOKEN)


def estimate_block_tokens(lines: Iterable[bytes]) -> tuple[int, int]:
    """The sum and the largest of ``estimate_tokens`` over ``lines``."""
    total = largest = 0
    for tokens in map(estimate_tokens, lines):
        total += tokens
        largest = max(largest, tokens)
    return total, largest


@dataclass(frozen=True)
class ShardLimits:
    """What one shard may hold; ``None`` is no limit.

    :param max_bytes: bytes per shard file (default a margin under the Files API's 2 GB, for the
        upload's own overhead; at most 2 GB).
    :param max_requests: requests (lines) per shard.
    :param max_tokens: estimated input tokens per shard (``estimate_tokens``); set it under the model's
        enqueued-token limit, or a shard can never start.
    """

    max_bytes: int = DEFAULT_SHARD_MAX_BYTES
    max_requests: int | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_requests", "max_tokens"):
            value = getattr(self, name)
            if value is None and name != "max_bytes":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GeminiBatchInputError(f"{name} must be a whole number >= 1, got {value!r}.")
        if self.max_bytes > FILE_LIMIT_BYTES:
            raise GeminiBatchInputError(
                f"max_bytes={self.max_bytes} is over the Files API's limit of {FILE_LIMIT_BYTES} bytes (2 GB) "
                "per input file: lower it."
            )


class ShardPlanner:
    """Decide, one line at a time, where shards begin.

    Call ``problem`` first: a line no shard can hold is an error. Then ``starts_new_shard`` says
    whether the line opens a new shard (it always does for the first line).
    """

    def __init__(self, limits: ShardLimits) -> None:
        self.limits = limits
        self.shard_count = 0
        self._bytes = self._requests = self._tokens = 0

    def problem(self, size: int, tokens: int) -> str | None:
        """What stops a line of ``size`` bytes and ``tokens`` estimated tokens from fitting any shard."""
        limits = self.limits
        if size > limits.max_bytes:
            return f"is {size} bytes, over max_bytes={limits.max_bytes}: no shard can hold it; shorten the request"
        if limits.max_tokens is not None and tokens > limits.max_tokens:
            return (
                f"is about {tokens} tokens ({size} bytes / {BYTES_PER_TOKEN}), over max_tokens={limits.max_tokens}: "
                "no shard can hold it; shorten the request or raise max_tokens"
            )
        return None

    def starts_new_shard(self, size: int, tokens: int) -> bool:
        """Place a line that fits a shard (``problem`` is ``None``); return whether it begins a new one."""
        limits = self.limits
        new = (
            self.shard_count == 0
            or self._bytes + size > limits.max_bytes
            or (limits.max_requests is not None and self._requests + 1 > limits.max_requests)
            or (limits.max_tokens is not None and self._tokens + tokens > limits.max_tokens)
        )
        if new:
            self.shard_count += 1
            self._bytes = self._requests = self._tokens = 0
        self._bytes += size
        self._requests += 1
        self._tokens += tokens
        return new

    def place_block(self, size: int, requests: int, tokens: int) -> bool | None:
        """Add a block of whole lines to the current shard if all of it fits there (or, before the
        first shard, to a new one). Return ``None`` when it was not placed, else whether it begins a
        new shard (only the first block can). Every line of the block must fit a shard on its own
        (``problem`` is ``None`` for each).

        Placing a block is the same as placing its lines one by one with ``starts_new_shard`` when
        none of them would begin a new shard; a block that straddles a cut is not placed, and the
        caller places its lines one by one.
        """
        limits = self.limits
        first = self.shard_count == 0
        used_bytes, used_requests, used_tokens = (0, 0, 0) if first else (self._bytes, self._requests, self._tokens)
        if (
            used_bytes + size > limits.max_bytes
            or (limits.max_requests is not None and used_requests + requests > limits.max_requests)
            or (limits.max_tokens is not None and used_tokens + tokens > limits.max_tokens)
        ):
            return None
        if first:
            self.shard_count = 1
        self._bytes, self._requests, self._tokens = used_bytes + size, used_requests + requests, used_tokens + tokens
        return first


class KeyLedger:
    """Remembers a 64-bit hash of every key, 8 bytes each, to find keys repeated anywhere in the input.

    Hashes that repeat are only suspects (two keys may share a hash): ``repeated_hashes`` names them
    and the caller reads the input again to find which keys, on which lines, really repeat.
    """

    def __init__(self) -> None:
        self._buckets = [array("q") for _ in range(_BUCKETS)]

    def add(self, key: str) -> None:
        """Remember ``key``."""
        hashed = hash(key)
        self._buckets[(hashed >> 56) + _BUCKETS // 2].append(hashed)

    def add_many(self, keys: Iterable[str]) -> None:
        """Remember every key of ``keys``: sorted once, then handed to the buckets a slice at a time."""
        hashes = sorted(map(hash, keys))
        if not hashes:
            return
        buckets, low = self._buckets, 0
        first, last = (hashes[0] >> 56) + _BUCKETS // 2, (hashes[-1] >> 56) + _BUCKETS // 2
        for index in range(first, last + 1):
            high = len(hashes) if index == last else bisect_left(hashes, _BUCKET_STARTS[index], low)
            if high > low:
                buckets[index].extend(hashes[low:high])
            low = high

    def repeated_hashes(self) -> set[int]:
        """The hashes added more than once; sorted one bucket at a time, so memory stays near 8 bytes a key."""
        repeated: set[int] = set()
        for bucket in self._buckets:
            if len(set(bucket)) == len(bucket):
                continue  # No repeats here: the usual case, found without a Python-level loop.
            previous = None
            for hashed in sorted(bucket):
                if hashed == previous:
                    repeated.add(hashed)
                previous = hashed
        return repeated

    @staticmethod
    def hash_of(key: str) -> int:
        """The hash ``add`` keeps for ``key``, for the second look at suspects."""
        return hash(key)
