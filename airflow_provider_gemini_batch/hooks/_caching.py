"""The context caching and token counting half of ``GeminiBatchHook``, and the checks a submit runs with them.

A base class of the hook, as the Files API half (``_files.py``) is: users call these methods on
``GeminiBatchHook``. What a cache is and how a batch request uses one: ``docs/caching-and-cost.md``.
The decisions (is a cache usable, how requests name it, how tokens extrapolate) are pure, in
``caching.py`` and ``token_budget.py``; this module sends the calls and reads the input once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pydantic_core

from airflow_provider_gemini_batch.batch_input import PreparedInput, parse_records, request_problem
from airflow_provider_gemini_batch.caching import (
    CachedContent,
    TokenCount,
    expiry_problem,
    jsonl_with_cache,
    records_with_cache,
    ttl_text,
)
from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchInputError,
    GeminiBatchNotFoundError,
    GeminiBatchPermissionError,
)
from airflow_provider_gemini_batch.hooks._endpoints import (
    ApiCall,
    Page,
    _json,
    _page_params,
    _page_parser,
    apages,
    model_path,
    pages,
    resource_name,
)
from airflow_provider_gemini_batch.hooks._files import GeminiFilesHook
from airflow_provider_gemini_batch.hooks._sources import open_source
from airflow_provider_gemini_batch.models import BatchKind
from airflow_provider_gemini_batch.settings import DEFAULT_TOKEN_SAMPLE_SIZE, cache_expiry_margin
from airflow_provider_gemini_batch.token_budget import InputSample, TokenEstimate, budget_problem

_COLLECTION = "cachedContents"
_CACHE_FIELDS = ("cachedContent", "cached_content")


def _parse_cache(response: httpx.Response) -> CachedContent:
    return CachedContent.model_validate(_json(response))


def _cache_name(name: str) -> str:
    return resource_name(name, _COLLECTION)


def _get_cache(name: str) -> ApiCall[CachedContent]:
    name = _cache_name(name)
    return ApiCall("GET", name, _parse_cache, f"get cached content {name}")


def _list_caches(page_size: int | None, page_token: str | None) -> ApiCall[Page[CachedContent]]:
    parse = _page_parser(_COLLECTION, CachedContent.model_validate)
    return ApiCall("GET", _COLLECTION, parse, "list cached contents", params=_page_params(page_size, page_token))


def _expiry_fields(ttl: float | timedelta | str | None, expire_time: datetime | str | None) -> dict[str, str]:
    if (ttl is None) == (expire_time is None):
        raise GeminiBatchInputError(
            "Pass exactly one of ttl (seconds, a timedelta or '3600s') or expire_time (an aware datetime)."
        )
    if ttl is not None:
        try:
            return {"ttl": ttl_text(ttl)}
        except ValueError as exc:
            raise GeminiBatchInputError(f"ttl {ttl!r} is not a positive duration: {exc}") from exc
    if isinstance(expire_time, datetime):
        if expire_time.tzinfo is None:
            raise GeminiBatchInputError("expire_time is a naive datetime: give it a timezone (e.g. timezone.utc).")
        return {"expireTime": expire_time.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")}
    return {"expireTime": str(expire_time)}


def _content(value: Any, what: str) -> dict[str, Any]:
    """A ``Content`` from a string (one user text part) or a dict given as is."""
    if isinstance(value, str):
        return {"role": "user", "parts": [{"text": value}]}
    if isinstance(value, Mapping):
        return dict(value)
    raise GeminiBatchInputError(f"{what} must be a string or a Content dict ({{'parts': [...]}}), got {value!r:.60}.")


class GeminiCachingHook(GeminiFilesHook):
    """Context caching and token counting methods of ``GeminiBatchHook`` (use that class; parameters as its)."""

    # -- cachedContents -------------------------------------------------------------------------

    def create_cached_content(
        self,
        model: str,
        *,
        contents: Sequence[Any] | str | None = None,
        system_instruction: Mapping[str, Any] | str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        ttl: float | timedelta | str | None = None,
        expire_time: datetime | str | None = None,
        display_name: str | None = None,
    ) -> CachedContent:
        """Create a context cache of ``contents`` (and a system instruction, tools) that requests on ``model`` can use.

        Each request naming it (``cachedContent``) reads its tokens at the cached-input price; storage is
        billed per hour of TTL. The service has a minimum size (about 1,024 to 4,096 tokens by model).

        :param contents: ``Content`` dicts, or strings (each one user text part); one string is one content.
        :param system_instruction: a string or a ``Content`` dict.
        :param tools: ``Tool`` dicts, sent as given.
        :param ttl: how long it lives (seconds, a ``timedelta`` or ``"3600s"``); or give ``expire_time``.
        :param expire_time: when it expires (an aware ``datetime`` or an RFC 3339 string).
        """
        body: dict[str, Any] = {"model": model_path(model)}
        if contents:
            items = [contents] if isinstance(contents, (str, Mapping)) else list(contents)
            body["contents"] = [_content(item, f"contents[{index}]") for index, item in enumerate(items)]
        if system_instruction:
            body["systemInstruction"] = _content(system_instruction, "system_instruction")
        if tools:
            body["tools"] = [dict(tool) for tool in tools]
        if "contents" not in body and "systemInstruction" not in body:
            raise GeminiBatchInputError("A context cache needs contents or a system_instruction: both are empty.")
        if display_name:
            body["displayName"] = display_name
        body.update(_expiry_fields(ttl, expire_time))
        # Resending after a lost reply may leave a second cache, billed for storage until its TTL ends;
        # that is cheaper than failing a task whose cache was made.
        created = self.client.call(
            ApiCall("POST", _COLLECTION, _parse_cache, f"create cached content on {body['model']}", json=body)
        )
        self.log.info(
            "Created context cache %s on %s: %d tokens, expires %s",
            created.name,
            created.model,
            created.token_count,
            created.expire_time,
        )
        return created

    def get_cached_content(self, name: str) -> CachedContent:
        """Get a context cache (``cachedContents/...``); one deleted or expired raises ``GeminiBatchNotFoundError``."""
        return self.client.call(_get_cache(name))

    def list_cached_contents(self, *, page_size: int | None = None) -> Iterator[CachedContent]:
        """Iterate over every context cache of the project, page after page."""
        return pages(lambda token: self.client.call(_list_caches(page_size, token)))

    def update_cached_content(
        self, name: str, *, ttl: float | timedelta | str | None = None, expire_time: datetime | str | None = None
    ) -> CachedContent:
        """Give a context cache a new TTL (counted from now) or expiry time; nothing else of a cache can change."""
        name = _cache_name(name)
        body = _expiry_fields(ttl, expire_time)
        updated = self.client.call(
            ApiCall(
                "PATCH",
                name,
                _parse_cache,
                f"update cached content {name}",
                json=body,
                params={"updateMask": ",".join("expire_time" if key == "expireTime" else key for key in body)},
            )
        )
        self.log.info("Context cache %s now expires %s", updated.name, updated.expire_time)
        return updated

    def delete_cached_content(self, name: str) -> None:
        """Delete a context cache; a missing one raises ``GeminiBatchNotFoundError``."""
        name = _cache_name(name)
        self.client.call(ApiCall("DELETE", name, lambda response: None, f"delete cached content {name}"))
        self.log.info("Deleted context cache %s", name)

    # -- countTokens -----------------------------------------------------------------------------

    def count_tokens(
        self,
        model: str,
        *,
        contents: Sequence[Any] | str | None = None,
        generate_content_request: Mapping[str, Any] | None = None,
    ) -> TokenCount:
        """Count the tokens of ``contents``, or of a whole ``GenerateContentRequest``, with the service (free).

        :param contents: ``Content`` dicts or strings, as for ``create_cached_content``.
        :param generate_content_request: a request body (system instruction, tools and a
            ``cachedContent`` count too; the cache's tokens are reported apart as well).
        """
        path = model_path(model)
        if (contents is None) == (generate_content_request is None):
            raise GeminiBatchInputError("Pass exactly one of contents or generate_content_request to count_tokens.")
        if generate_content_request is not None:
            body: dict[str, Any] = {"generateContentRequest": {"model": path, **generate_content_request}}
        else:
            assert contents is not None
            items = [contents] if isinstance(contents, (str, Mapping)) else list(contents)
            body = {"contents": [_content(item, f"contents[{index}]") for index, item in enumerate(items)]}
        return self.client.call(
            ApiCall(
                "POST",
                f"{path}:countTokens",
                lambda response: TokenCount.model_validate(_json(response)),
                f"count tokens on {path}",
                json=body,
            )
        )

    # -- what a submit checks before uploading ---------------------------------------------------

    def cache_for_job(
        self,
        cached_content: str,
        model: str,
        *,
        margin: float | None = None,
        extend_ttl: float | timedelta | None = None,
    ) -> CachedContent:
        """Check that a job on ``model`` submitted now can use a cache: its model, and that it outlives ``margin``.

        :param margin: seconds the cache must still live (default ``[gemini_batch] cache_expiry_margin_hours``).
        :param extend_ttl: when the cache would expire sooner, set its TTL to this (from now) instead of refusing.
        :raises GeminiBatchInputError: the cache is gone, on another model, or expires too soon; the
            message says what to do. Nothing is uploaded before this check.
        """
        path = model_path(model)
        margin = cache_expiry_margin() if margin is None else margin
        try:
            cache = self.get_cached_content(cached_content)
        except (GeminiBatchNotFoundError, GeminiBatchPermissionError) as exc:
            raise GeminiBatchInputError(
                f"Context cache {cached_content} does not exist (deleted, expired, or another project's): "
                "nothing was uploaded or submitted. Create the cache again (GeminiCreateCachedContentOperator) "
                "and pass its name."
            ) from exc
        problem = expiry_problem(cache, path, datetime.now(timezone.utc), margin)
        if problem is not None and extend_ttl is not None and cache.model == path:
            cache = self.update_cached_content(cache.name, ttl=extend_ttl)
            problem = expiry_problem(cache, path, datetime.now(timezone.utc), margin)
            if problem is not None:
                problem = f"extend_cache_ttl={extend_ttl} is too short. {problem}"
        if problem is not None:
            raise GeminiBatchInputError(problem)
        return cache

    def estimate_input_tokens(
        self,
        model: str,
        *,
        requests: Iterable[Any] | str | None = None,
        input_path: Any = None,
        key_field: str = "key",
        kind: BatchKind = "generate",
        sample_size: int = DEFAULT_TOKEN_SAMPLE_SIZE,
        tokens_per_request: int = 0,
    ) -> TokenEstimate:
        """Estimate a job's input tokens: ``sample_size`` requests counted by the service, extrapolated by bytes.

        The input is read once, a request at a time (``token_budget.InputSample``); requests that are not
        valid are left out (validation names them). The error margin: ``docs/caching-and-cost.md``.

        :param requests: records, as the submit operator takes them; or give ``input_path`` (a JSONL file).
        :param tokens_per_request: tokens every request adds (a context cache it reads).
        """
        sample = InputSample(sample_size)
        for request, byte_count in _requests_of(requests, input_path, key_field):
            if request_problem(request, kind) is None:
                sample.add(request, byte_count)
        counted = sum(self._tokens_of(model, request, kind) for request, _bytes in sample.requests)
        estimate = sample.estimate(counted, tokens_per_request)
        self.log.info(
            "Input of %d request(s) holds about %d tokens (%d request(s) counted%s)",
            estimate.request_count,
            estimate.tokens,
            estimate.sampled,
            ", exact" if estimate.exact else ", extrapolated by bytes",
        )
        return estimate

    def _tokens_of(self, model: str, request: Mapping[str, Any], kind: BatchKind) -> int:
        if kind == "embed":
            return self.count_tokens(model, contents=[request["content"]]).total_tokens
        uncached = {name: value for name, value in request.items() if name not in _CACHE_FIELDS}
        return self.count_tokens(model, generate_content_request=uncached).total_tokens

    def prepare_submit_input(
        self,
        *,
        model: str,
        requests: Iterable[Any] | str | None = None,
        input_file: str | None = None,
        input_path: Any = None,
        display_name: str | None = None,
        key_field: str = "key",
        kind: BatchKind = "generate",
        cached_content: str | None = None,
        extend_cache_ttl: float | timedelta | None = None,
        max_input_tokens: int | None = None,
    ) -> PreparedInput:
        """``prepare_input`` after a submit's own checks: the cache it names, and its input-token budget.

        In order, before anything is uploaded: the cache is checked (``cache_for_job``; its TTL extended
        with ``extend_cache_ttl``), the input's tokens are estimated and refused over ``max_input_tokens``
        (``estimate_input_tokens``), then ``cachedContent`` is set on every request naming no cache (a
        JSONL input is rewritten line by line into a temporary file on its way to the upload).

        :raises GeminiBatchInputError: saying what to fix; nothing was uploaded then.
        """
        if cached_content is None and max_input_tokens is None:
            return self.prepare_input(
                requests=requests,
                input_file=input_file,
                input_path=input_path,
                display_name=display_name,
                key_field=key_field,
                kind=kind,
            )
        if cached_content is not None and kind == "embed":
            raise GeminiBatchInputError(
                "cached_content is for generation requests: an embeddings job cannot read a context cache."
            )
        if input_file is not None:
            given = "cached_content" if cached_content is not None else "max_input_tokens"
            raise GeminiBatchInputError(
                f"{given} needs the requests or an input_path: an uploaded input_file ({input_file}) is not read "
                "back. Pass the JSONL file as input_path instead."
            )
        if requests is not None:
            requests = list(parse_records(requests))  # Read twice: counted, then sent.
        cache = self.cache_for_job(cached_content, model, extend_ttl=extend_cache_ttl) if cached_content else None
        if max_input_tokens is not None:
            estimate = self.estimate_input_tokens(
                model,
                requests=requests,
                input_path=input_path,
                key_field=key_field,
                kind=kind,
                tokens_per_request=cache.token_count if cache is not None else 0,
            )
            problem = budget_problem(estimate, max_input_tokens, "The input" if input_path is None else str(input_path))
            if problem is not None:
                raise GeminiBatchInputError(problem)
        if cache is None:
            return self.prepare_input(
                requests=requests, input_path=input_path, display_name=display_name, key_field=key_field, kind=kind
            )
        if requests is not None:
            cached_requests = list(records_with_cache(requests, cache.name, key_field))
            return self.prepare_input(
                requests=cached_requests, display_name=display_name, key_field=key_field, kind=kind
            )
        with _rewritten(input_path, cache.name) as rewritten:
            return self.prepare_input(input_path=rewritten, display_name=display_name, kind=kind)

    # -- async twins ------------------------------------------------------------------------------

    async def aget_cached_content(self, name: str) -> CachedContent:
        """Get a context cache."""
        return await (await self.aclient()).call(_get_cache(name))

    async def alist_cached_contents(self, *, page_size: int | None = None) -> AsyncIterator[CachedContent]:
        """Iterate over every context cache, page after page."""
        client = await self.aclient()
        async for cache in apages(lambda token: client.call(_list_caches(page_size, token))):
            yield cache


def _lines(stream: Any) -> Iterator[bytes]:
    # Airflow 3.0's ObjectStoragePath files cannot be iterated: read with readline.
    return iter(stream.readline, b"")


def _requests_of(requests: Iterable[Any] | None, input_path: Any, key_field: str) -> Iterator[tuple[Any, int]]:
    """Each request body of the input with its size in bytes (the whole JSONL line for a file)."""
    if input_path is None:
        for record in requests or []:
            if isinstance(record, Mapping):
                body = (
                    record.get("request")
                    if "request" in record
                    else {name: value for name, value in record.items() if name != key_field}
                )
                yield body, len(pydantic_core.to_json(body))
        return
    with open_source(input_path) as (stream, _size, _name):
        for line in _lines(stream):
            try:
                item = pydantic_core.from_json(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item.get("request"), len(line)


@contextmanager
def _rewritten(input_path: Any, cache_name: str) -> Iterator[str]:
    """A temporary copy of a JSONL input with ``cachedContent`` set, under the input's own file name."""
    with tempfile.TemporaryDirectory(prefix="gemini-batch-cache-") as folder:
        with open_source(input_path) as (stream, _size, name):
            path = os.path.join(folder, os.path.basename(name) or "requests.jsonl")
            with open(path, "wb") as out:
                for line in jsonl_with_cache(_lines(stream), cache_name):
                    out.write(line)
        yield path
