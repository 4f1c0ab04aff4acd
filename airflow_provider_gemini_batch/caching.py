"""Context caches without I/O: the ``CachedContent`` model, whether one lives long enough, and requests that use it.

A batch request uses a cache by naming it in ``cachedContent`` (``docs/caching-and-cost.md``). The
submit operator's ``cached_content=`` sets that on every request that names none, for inline
requests (``records_with_cache``) and for a JSONL input rewritten line by line on its way to the
upload (``jsonl_with_cache``). A request that names a cache which has expired by the time the job
runs fails in the results, after the job has billed the rest: ``expiry_problem`` refuses such a
cache before anything is uploaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "CachedContent",
    "TokenCount",
    "as_seconds",
    "expiry_problem",
    "jsonl_with_cache",
    "records_with_cache",
    "ttl_text",
]

_FIELD_NAMES = ("cachedContent", "cached_content")


class _Usage(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    total_token_count: int = 0


class CachedContent(BaseModel):
    """A context cache (``cachedContents/{id}``); its contents are never returned by the service."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str
    model: str | None = None
    display_name: str | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None
    expire_time: datetime | None = None
    usage_metadata: _Usage = Field(default_factory=_Usage)

    @property
    def token_count(self) -> int:
        """Tokens the cache holds: each request that uses it reads them (billed at the cached-input price)."""
        return self.usage_metadata.total_token_count

    def summary(self) -> dict[str, Any]:
        """What an operator returns or logs: name, model, tokens, expiry (an XCom-sized dict)."""
        return {
            "name": self.name,
            "model": self.model,
            "display_name": self.display_name,
            "token_count": self.token_count,
            "expire_time": self.expire_time.isoformat() if self.expire_time else None,
        }


class TokenCount(BaseModel):
    """The reply of ``countTokens``: ``total_tokens``, of which ``cached_content_token_count`` come from a cache."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    total_tokens: int = 0
    cached_content_token_count: int = 0


def as_seconds(value: float | timedelta) -> float:
    """Seconds from a number of seconds or a ``timedelta``."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def ttl_text(ttl: float | timedelta | str) -> str:
    """A TTL as the wire's Duration, ``"3600s"``; a string such as ``"3600s"`` passes as given."""
    if isinstance(ttl, str):
        return ttl.strip()
    seconds = as_seconds(ttl)
    if seconds <= 0:
        raise ValueError(f"A TTL must be positive, got {seconds} s.")
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def expiry_problem(cache: CachedContent, model: str, now: datetime, margin: float) -> str | None:
    """Why a job on ``model`` submitted at ``now`` cannot use ``cache``, or ``None`` when it can.

    :param model: the job's model, ``models/...``.
    :param margin: seconds the cache must still live after ``now`` (a job queues before it runs).
    """
    if cache.model and cache.model != model:
        return (
            f"Context cache {cache.name} was made for {cache.model}, and the job runs on {model}: a request can "
            f"only use a cache of its own model. Create the cache on {model}, or submit on {cache.model}."
        )
    if cache.expire_time is None:
        return None
    left = (cache.expire_time - now).total_seconds()
    if left >= margin:
        return None
    when = cache.expire_time.astimezone(timezone.utc).isoformat(timespec="seconds")
    return (
        f"Context cache {cache.name} expires at {when}, {max(left, 0):.0f} s from now, under the {margin:.0f} s a "
        "job may wait before it runs ([gemini_batch] cache_expiry_margin_hours): its requests would fail. Nothing was "
        "uploaded or submitted. Pass extend_cache_ttl= (e.g. timedelta(hours=2)) to extend the cache first, or "
        "create it with a longer ttl."
    )


def _named_cache(request: Mapping[str, Any]) -> bool:
    return any(request.get(field) for field in _FIELD_NAMES)


def records_with_cache(records: Iterable[Any], cached_content: str, key_field: str = "key") -> Iterator[Any]:
    """Yield ``records`` with ``cachedContent`` set on every request that names no cache, lazily.

    A record is ``{"key", "request": {...}}`` or flat (``key_field`` beside the request's own fields);
    anything else passes unchanged, for validation to report with its number.
    """
    for record in records:
        if not isinstance(record, Mapping):
            yield record
        elif "request" in record:
            request = record["request"]
            if isinstance(request, Mapping) and not _named_cache(request):
                yield {**record, "request": {**request, "cachedContent": cached_content}}
            else:
                yield record
        elif _named_cache(record):
            yield record
        else:
            yield {**record, "cachedContent": cached_content}


def jsonl_with_cache(lines: Iterable[bytes], cached_content: str) -> Iterator[bytes]:
    """Yield JSONL ``lines`` with ``cachedContent`` set on every request that names no cache, one line at a time.

    Every input line gives one output line (blank and malformed ones unchanged), so validation's line
    numbers still point into the user's file.
    """
    for line in lines:
        try:
            item = pydantic_core.from_json(line)
        except ValueError:
            yield line
            continue
        request = item.get("request") if isinstance(item, dict) else None
        if not isinstance(request, dict) or _named_cache(request):
            yield line
            continue
        request["cachedContent"] = cached_content
        yield pydantic_core.to_json(item) + b"\n"
