"""Gemini Batch Mode as a backend of Airflow's common AI provider: ``@task.llm_batch`` and ``LLMBatchOperator``.

``apache-airflow-providers-common-ai`` (install this provider with the ``[common-ai]`` extra) finds
:class:`GeminiBatchAdapter` through its entry-point group ``airflow.providers.common.ai.batch_adapters``
under the name ``google``, the ``model_id`` prefix of the Gemini Developer API
(``model_id="google:gemini-2.5-flash"``; ``google-cloud:`` is Vertex AI, another API). common-ai keeps
its own durable state (an intent record before the paid call), writes the results as JSONL to
``result_path`` and returns a manifest; this adapter only talks to the service, through
``GeminiBatchHook``.

Its adapter interface is experimental ("can change in a minor release"), so the extra pins the
minor version it was built and tested against.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, ClassVar, cast

from airflow.providers.common.ai.batch.base import (
    BatchAdapter,
    BatchState,
    BatchStatus,
    ExtractedOutput,
    RawResultItem,
    SubmitResult,
)
from airflow.providers.common.ai.exceptions import (
    LLMBatchInputError,
    LLMBatchLimitExceededError,
    LLMBatchModelMismatchError,
)

from airflow_provider_gemini_batch.batch_input import FILE_LIMIT_BYTES, INLINE_LIMIT_BYTES, records_to_jsonl
from airflow_provider_gemini_batch.batch_results import BatchResult
from airflow_provider_gemini_batch.exceptions import GeminiBatchIncompleteResults, GeminiBatchInputError, truncate
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.idempotency import keyed_display_name
from airflow_provider_gemini_batch.models import Batch
from airflow_provider_gemini_batch.models import BatchState as GeminiState

if TYPE_CHECKING:
    from airflow.providers.common.ai.batch.base import BatchRequest
    from airflow.providers.common.ai.batch.output_schema import OutputSpec

__all__ = ["GeminiBatchAdapter"]

#: What a job made by common-ai is called in the Batches list (the key marker follows).
DISPLAY_NAME = "common-ai llm_batch"
#: The intent record's time has microseconds, a job's createTime is the service's clock: a job made in
#: the same instant as the intent must not be passed over for a clock a little behind ours.
_CLOCK_SKEW = timedelta(minutes=5)
#: GenerateContentRequest's own fields (camelCase and snake_case, docs/protocol.md "Create body"); any
#: other key of ``request_params`` is a generationConfig field (``temperature``, ``topP``, ...).
_REQUEST_FIELDS = frozenset(
    {
        "contents",
        "systemInstruction",
        "system_instruction",
        "tools",
        "toolConfig",
        "tool_config",
        "safetySettings",
        "safety_settings",
        "cachedContent",
        "cached_content",
        "generationConfig",
        "generation_config",
        "labels",
    }
)
#: The smallest input line this adapter writes (an empty prompt) is about this many bytes, so a 2 GB
#: input file holds at most this many requests: the service documents no other cap.
_SMALLEST_LINE_BYTES = 64

_STATES: dict[GeminiState, BatchStatus] = {
    GeminiState.SUCCEEDED: "completed",
    GeminiState.FAILED: "failed",
    GeminiState.CANCELLED: "cancelled",
    GeminiState.EXPIRED: "expired",
}


class GeminiBatchAdapter(BatchAdapter):
    """common-ai's batch adapter for the Gemini API Batch Mode (``model_id="google:<model>"``).

    Requests go inline while the create body stays under the 20 MB limit, else as an uploaded JSONL
    file (up to 2 GB); both through ``GeminiBatchHook.prepare_input``, which validates every request
    first. A request's ``key`` is ``<idempotency key>-<index>``, the ``custom_id`` common-ai matches
    results on. The job's display name carries the idempotency key and the input fingerprint, which
    is how :meth:`find_orphaned_batch` finds a job whose create reply a crashed worker never recorded.

    ``request_params`` (and a request's ``params``) are ``GenerateContentRequest`` fields
    (``safetySettings``, ``tools``, ``generationConfig``, ...); any other key is taken as a
    ``generationConfig`` field, so ``{"temperature": 0.2}`` works as it does for OpenAI and Anthropic.
    ``max_tokens`` becomes ``maxOutputTokens``, which on thinking models includes the thinking tokens.

    Built by common-ai from a connection of type ``gemini`` (this provider's) or ``pydanticai``
    (common-ai's): the API key in the password, an optional base URL in the host. common-ai passes
    no extras, so the request timeout, retries and API version take their defaults.

    :param api_key: the Gemini API key.
    :param base_url: the service's base URL (the emulator's, a proxy's); default the Gemini API.
    :param client: a ``GeminiBatchHook`` to use instead of building one (tests).
    """

    name = "google"
    conn_types: ClassVar[frozenset[str]] = frozenset({"gemini", "pydanticai"})
    max_payload_bytes = FILE_LIMIT_BYTES
    max_requests = FILE_LIMIT_BYTES // _SMALLEST_LINE_BYTES
    #: A job runs one model: the model is in the create call's URL, not in each request.
    allows_per_request_model = False

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None, client: Any | None = None) -> None:
        self._client: GeminiBatchHook = (
            client
            if client is not None
            else GeminiBatchHook.for_api_key(api_key, base_url, source="The connection common-ai passed")
        )

    @property
    def hook(self) -> GeminiBatchHook:
        """The hook every call goes through."""
        return self._client

    # -- requests --------------------------------------------------------------------------------

    def build_output_directive(self, spec: OutputSpec) -> dict[str, Any]:
        """Ask for JSON matching ``spec``'s schema: ``responseMimeType`` plus ``responseJsonSchema``."""
        if not spec.is_structured:
            return {}
        # responseJsonSchema takes JSON Schema as pydantic writes it ($defs, $ref); the older
        # responseSchema takes only an OpenAPI subset.
        return {"generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": spec.json_schema}}

    def _records(
        self,
        requests: list[BatchRequest],
        *,
        model: str,
        idempotency_key: str,
        directive: Mapping[str, Any],
        system_prompt: str,
        max_tokens: int,
        request_params: Mapping[str, Any] | None,
    ) -> Iterator[dict[str, Any]]:
        """Yield one ``{"key", "request"}`` input record per request; a generator, so no list of them is held."""
        for index, request in enumerate(requests):
            if self.resolve_request_model(request.get("model"), default_bare_model=model, request_index=index) != model:
                raise LLMBatchModelMismatchError(
                    f"Request {index} sets model={request.get('model')!r}, but a Gemini batch job runs one model "
                    f"({model!r}, from model_id). Split requests for other models into their own task."
                )
            body: dict[str, Any] = {}
            generation_config: dict[str, Any] = {}
            for params in (request_params or {}, request.get("params") or {}):
                for name, value in params.items():
                    if name in ("generationConfig", "generation_config"):
                        generation_config.update(value)
                    elif name in _REQUEST_FIELDS:
                        body[name] = value
                    else:
                        generation_config[name] = value
            generation_config["maxOutputTokens"] = request.get("max_tokens") or max_tokens
            generation_config.update(directive.get("generationConfig", {}))
            # The keys this adapter manages come last, so params cannot replace the prompt.
            body["contents"] = [{"role": "user", "parts": [{"text": request["prompt"]}]}]
            instruction = request.get("system_prompt") or system_prompt
            if instruction:
                body["systemInstruction"] = {"parts": [{"text": instruction}]}
                body.pop("system_instruction", None)
            body["generationConfig"] = generation_config
            yield {"key": f"{idempotency_key}-{index}", "request": body}

    def validate_requests(
        self,
        requests: list[BatchRequest],
        *,
        model: str,
        output_spec: OutputSpec,
        idempotency_key: str,
        system_prompt: str = "",
        max_tokens: int = 1024,
        request_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Check the batch against the service's limits without a network call: 2 GB of input, one model.

        Input up to about 20 MB goes inline, more as an uploaded file; past 2 GB, split the input with
        ``.expand()``. Every request is checked the way ``GeminiBatchHook.prepare_input`` checks it.
        """
        self.check_custom_id_length(idempotency_key, len(requests))
        if len(requests) > self.max_requests:
            raise LLMBatchLimitExceededError(
                f"A Gemini batch job holds at most {self.max_requests} requests (its 2 GB input file); got "
                f"{len(requests)}. Split the input across mapped task instances with .expand()."
            )
        records = self._records(
            requests,
            model=model,
            idempotency_key=idempotency_key,
            directive=self.build_output_directive(output_spec),
            system_prompt=system_prompt,
            max_tokens=max_tokens,
            request_params=request_params,
        )
        sink = _ByteCounter(self.max_payload_bytes)
        try:
            summary = records_to_jsonl(records, cast(IO[bytes], sink), source="requests", kind="generate")
        except _TooLarge:
            raise LLMBatchLimitExceededError(
                f"A Gemini batch job's input is at most {self.max_payload_bytes} bytes (2 GB, as an uploaded "
                f"JSONL file); these {len(requests)} requests are larger. Split the input with .expand()."
            ) from None
        except GeminiBatchInputError as exc:
            raise LLMBatchInputError(str(exc)) from exc
        how = "inline" if summary.byte_count <= INLINE_LIMIT_BYTES else "as an uploaded JSONL file"
        self.hook.log.info(
            "%d requests (%d bytes of JSONL) for %s will be sent %s", len(requests), summary.byte_count, model, how
        )

    def submit(
        self,
        requests: list[BatchRequest],
        *,
        model: str,
        idempotency_key: str,
        input_fingerprint: str,
        output_spec: OutputSpec,
        system_prompt: str = "",
        max_tokens: int = 1024,
        request_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SubmitResult:
        """Create the job (inline, or from an uploaded file) under a display name carrying key and fingerprint.

        A create whose reply is lost is resolved the hook's way (``submit_durably``): the key is looked up
        until the create can no longer land, never sent again at once.
        """
        key = job_key(idempotency_key, input_fingerprint)

        def prepare() -> Any:
            records = self._records(
                requests,
                model=model,
                idempotency_key=idempotency_key,
                directive=self.build_output_directive(output_spec),
                system_prompt=system_prompt,
                max_tokens=max_tokens,
                request_params=request_params,
            )
            return self.hook.prepare_input(requests=records, display_name=f"{key}.jsonl", kind="generate")

        def create(prepared: Any) -> Batch:
            return self.hook.create_batch(
                model,
                requests=prepared.requests,
                input_file=prepared.input_file,
                display_name=keyed_display_name(None, key, DISPLAY_NAME),
            )

        batch = self.hook.submit_durably(prepare, create, key=key, store=None)
        return SubmitResult(batch_id=batch.name, provider_input_ref=batch.input_file)

    # -- the job -------------------------------------------------------------------------------------

    def get_batch(self, batch_id: str) -> BatchState:
        """The job's state in common-ai's words, with its ``batchStats`` as counts."""
        return batch_state(self.hook.get_batch(batch_id))

    def cancel_batch(self, batch_id: str) -> None:
        """Ask the service to cancel the job."""
        self.hook.cancel_batch(batch_id)

    def find_orphaned_batch(self, idempotency_key: str, input_fingerprint: str, not_before: str) -> str | None:
        """The newest job whose display name carries this key and fingerprint, created since ``not_before``.

        Jobs are listed (the Batches API has no filter) and matched on the display name that
        :meth:`submit` gave them.
        """
        since = datetime.fromisoformat(not_before) - _CLOCK_SKEW if not_before else None
        found = [
            batch
            for batch in self.hook.find_batches_by_key(job_key(idempotency_key, input_fingerprint))
            if since is None or batch.create_time is None or batch.create_time >= since
        ]
        if not found:
            return None
        found.sort(key=lambda batch: batch.create_time.timestamp() if batch.create_time else 0.0)
        return found[-1].name

    def iter_results(self, batch_id: str) -> Iterator[RawResultItem]:
        """One item per result, read as ``GeminiBatchHook.iter_results`` reads them (streamed, in any order).

        A job that ended without results (expired, cancelled, failed) has none to give: common-ai counts
        its requests from :meth:`get_batch`'s counts.
        """
        batch = self.hook.get_batch(batch_id)
        if batch.inlined_responses is None and not batch.responses_file:
            self.hook.log.warning("Batch %s ended %s without results", batch.name, batch.progress)
            return iter(())
        return self._items(batch, self.hook.iter_results(batch))

    def _items(self, batch: Batch, results: Iterator[BatchResult]) -> Iterator[RawResultItem]:
        try:
            for result in results:
                item = result_item(result)
                if item is None:
                    self.hook.log.warning(
                        "Batch %s: skipping a result with a key not made here: %r", batch.name, result
                    )
                    continue
                yield item
        except GeminiBatchIncompleteResults as exc:
            # common-ai writes a "missing" row for every request without a result.
            self.hook.log.warning("%s", exc)

    def extract_output(self, raw: RawResultItem, spec: OutputSpec) -> ExtractedOutput:
        """The response's text (thoughts left out): plain, or JSON to parse when ``spec`` is structured."""
        text = BatchResult(response=raw.raw).text if isinstance(raw.raw, dict) else None
        if text is None:
            return ExtractedOutput(kind="absent")
        return ExtractedOutput(kind="json_text" if spec.is_structured else "text", text=text)

    def close(self) -> None:
        """Close the hook's connections."""
        self.hook.close()


def job_key(idempotency_key: str, input_fingerprint: str) -> str:
    """The key a job's display name carries: common-ai's task-instance key and the input's fingerprint."""
    return f"{idempotency_key}-{input_fingerprint[:16]}"


def batch_state(batch: Batch) -> BatchState:
    """Translate a job into common-ai's ``BatchState``: ``BATCH_STATE_*`` to its five words, ``batchStats`` to counts.

    An unknown or unfinished state is ``in_progress``. Requests that an expired or cancelled job never
    answered count as ``expired`` or ``cancelled``.
    """
    status = _STATES.get(batch.state, "in_progress")
    stats = batch.batch_stats
    unanswered = max(stats.request_count - stats.successful_request_count - stats.failed_request_count, 0)
    counts = {
        "succeeded": stats.successful_request_count,
        "errored": stats.failed_request_count,
        "expired": unanswered if status == "expired" else 0,
        "cancelled": unanswered if status == "cancelled" else 0,
    }
    message = None
    if status != "completed" and status != "in_progress":
        reason = batch.error.message if batch.error and batch.error.message else "no reason given"
        message = f"Batch {batch.name} ended {batch.state.short_name}: {truncate(reason, 300)}"
    return BatchState(status=status, counts=counts, error_message=message)


def result_item(result: BatchResult) -> RawResultItem | None:
    """One result as common-ai's ``RawResultItem``; ``None`` for a key not shaped ``<key>-<index>``."""
    prefix, _, index = (result.key or "").rpartition("-")
    if not prefix or not index.isdigit():
        return None
    if result.error is not None or result.response is None:
        error = result.error
        return RawResultItem(
            custom_id=result.key or "",
            index=int(index),
            provider_status="errored",
            model=None,
            usage=None,
            finish_reason=None,
            error={
                "type": "provider_error",
                "message": truncate(error.message, 500) if error else "the result has neither response nor error",
                "provider_code": (error.status or str(error.code)) if error else None,
                "stage": "provider",
            },
            raw=None,
        )
    response = result.response
    candidates = response.get("candidates") or []
    first = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    feedback = response.get("promptFeedback") or {}
    usage = result.usage
    return RawResultItem(
        custom_id=result.key or "",
        index=int(index),
        provider_status="success",
        model=response.get("modelVersion"),
        usage={
            "input_tokens": usage.get("promptTokenCount", 0),
            # Thinking tokens are billed as output.
            "output_tokens": usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0),
            "total_tokens": usage.get("totalTokenCount", 0),
        },
        # A blocked prompt has no candidate; its reason is in promptFeedback.
        finish_reason=first.get("finishReason") or feedback.get("blockReason"),
        error=None,
        raw=response,
    )


class _TooLarge(Exception):
    """The input passed the size limit: counting stops there."""


class _ByteCounter:
    """A write-only sink that counts bytes and stops at ``limit``: sizing the input without holding it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        if self.count > self.limit:
            raise _TooLarge
        return len(data)
