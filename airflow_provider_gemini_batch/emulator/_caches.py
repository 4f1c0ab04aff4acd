"""Context caches (``cachedContents``): what one emulator holds, when each expires, and what a request using one costs.

A cache lives until its ``expireTime`` (from ``ttl`` or ``expireTime`` at create, changed by a
PATCH); after that, or after a delete, it is 404 NOT_FOUND, as on the service. Its token count is
the fake model's word count of its contents and system instruction (``_fake_model.token_count``),
so a request that names it reports the same number as ``cachedContentTokenCount``.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_gemini_batch.emulator._errors import ApiError, invalid_argument, not_found
from airflow_provider_gemini_batch.emulator._fake_model import token_count
from airflow_provider_gemini_batch.emulator._wire import new_resource_id, read_field, timestamp

__all__ = ["CacheStore", "CachedContent", "parse_duration"]

_NANOS = 1_000_000_000
_DURATION = re.compile(r"^(\d+)(?:\.(\d{1,9}))?s$")
_EXTRA_DIGITS = re.compile(r"(\.\d{6})\d+")
#: The TTL a create without ``ttl`` or ``expireTime`` gets (the service's default: one hour).
_DEFAULT_TTL_NANOS = 3600 * _NANOS


def parse_duration(value: object, field: str) -> int:
    """Read a proto ``Duration`` (``"3600s"``, ``"1.5s"``) as nanoseconds; 400 when it is not one."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise invalid_argument(f"Invalid value at '{field}' (type.googleapis.com/google.protobuf.Duration): {value!r}")
    fraction = (match.group(2) or "").ljust(9, "0")
    return int(match.group(1)) * _NANOS + int(fraction or 0)


def _parse_time(value: object, field: str) -> int:
    """Read an RFC 3339 timestamp (up to nine fractional digits) as nanoseconds; 400 when it is not one."""
    moment = None
    if isinstance(value, str):
        text = _EXTRA_DIGITS.sub(r"\1", value.strip()).replace("Z", "+00:00")
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None:
        raise invalid_argument(f"Invalid value at '{field}' (type.googleapis.com/google.protobuf.Timestamp): {value!r}")
    return round(moment.timestamp() * 1_000_000) * 1000


@dataclasses.dataclass
class CachedContent:
    """One cache: what it holds (kept only to count it), its model and its timeline."""

    cache_id: str
    model: str
    display_name: str | None
    tokens: int
    created_ns: int
    updated_ns: int
    expire_ns: int

    @property
    def name(self) -> str:
        return f"cachedContents/{self.cache_id}"

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "createTime": timestamp(self.created_ns),
            "updateTime": timestamp(self.updated_ns),
            "expireTime": timestamp(self.expire_ns),
            "usageMetadata": {"totalTokenCount": self.tokens},
        }
        if self.display_name:
            body["displayName"] = self.display_name
        return body


class CacheStore:
    """Every live cache of one emulator; an expired one is forgotten the first time it is looked at."""

    def __init__(self) -> None:
        self._caches: dict[str, CachedContent] = {}

    def reset(self) -> None:
        self._caches.clear()

    def create(self, body: Mapping[str, Any], known_models: tuple[str, ...] | list[str]) -> CachedContent:
        model = read_field(body, "model")
        if not isinstance(model, str) or not model:
            raise invalid_argument("CachedContent.model is required: 'models/<model id>'.")
        model = model if "/" in model else f"models/{model}"
        if model not in known_models:
            raise not_found(f"{model} is not found, or is not supported for createCachedContent.")
        contents = read_field(body, "contents")
        if contents is not None and not isinstance(contents, list):
            raise invalid_argument("CachedContent.contents must be a list of Content.")
        tokens = token_count(contents or [], read_field(body, "systemInstruction"))
        if tokens == 0:
            raise invalid_argument("Cached content is empty: give contents or a system instruction with text.")
        now = time.time_ns()
        cache = CachedContent(
            new_resource_id(), model, read_field(body, "displayName"), tokens, now, now, self._expiry(body, now, True)
        )
        self._caches[cache.cache_id] = cache
        return cache

    def get(self, cache_id: str) -> CachedContent:
        cache = self._caches.get(cache_id)
        if cache is not None and cache.expire_ns <= time.time_ns():
            del self._caches[cache_id]
            cache = None
        if cache is None:
            raise not_found(f"CachedContent not found (or permission denied): cachedContents/{cache_id[:40]}")
        return cache

    def update(self, cache_id: str, body: Mapping[str, Any]) -> CachedContent:
        cache = self.get(cache_id)
        now = time.time_ns()
        cache.expire_ns = self._expiry(body, now, False)
        cache.updated_ns = now
        return cache

    def delete(self, cache_id: str) -> None:
        self.get(cache_id)
        del self._caches[cache_id]

    def oldest_first(self) -> list[CachedContent]:
        now = time.time_ns()
        for cache_id in [key for key, cache in self._caches.items() if cache.expire_ns <= now]:
            del self._caches[cache_id]
        return sorted(self._caches.values(), key=lambda cache: cache.created_ns)

    def tokens_for(self, request: Mapping[str, Any], model: str) -> int | str:
        """The cached tokens a request naming a cache adds, or why it cannot use it (an item error's message)."""
        name = read_field(request, "cachedContent")
        if not name:
            return 0
        cache_id = name.removeprefix("cachedContents/") if isinstance(name, str) else ""
        try:
            cache = self.get(cache_id)
        except ApiError:
            return f"CachedContent not found (or permission denied): {str(name)[:60]}"
        if cache.model != model:
            return f"Model {model} does not match the model of {cache.name} ({cache.model})."
        return cache.tokens

    @staticmethod
    def _expiry(body: Mapping[str, Any], now: int, creating: bool) -> int:
        ttl, expire_time = read_field(body, "ttl"), read_field(body, "expireTime")
        if ttl is not None and expire_time is not None:
            raise invalid_argument("Give one of ttl or expireTime, not both.")
        if ttl is not None:
            return now + parse_duration(ttl, "ttl")
        if expire_time is not None:
            return _parse_time(expire_time, "expire_time")
        if creating:
            return now + _DEFAULT_TTL_NANOS
        raise invalid_argument("Nothing to update: a cache's ttl or expireTime is all that can change.")
