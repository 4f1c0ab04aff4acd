"""Operators on files: upload batch input, split it into shards, download results, delete files."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError, GeminiBatchPermissionError
from airflow_provider_gemini_batch.links import GeminiBatchLink
from airflow_provider_gemini_batch.operators.batch import GeminiBatchBaseOperator
from airflow_provider_gemini_batch.outcome import MissingResultsPolicy
from airflow_provider_gemini_batch.pricing import cost_line, run_cost
from airflow_provider_gemini_batch.settings import DEFAULT_SHARD_MAX_BYTES, enqueued_token_limit
from airflow_provider_gemini_batch.storage import require_filesystem

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class GeminiUploadFileOperator(GeminiBatchBaseOperator):
    """Upload batch input JSONL and return its file name (``files/...``) for a submit task.

    Pass ``source`` (a JSONL file: local path, ``file://`` / ``s3://`` / ... URI or ``ObjectStoragePath``)
    or ``requests`` (records, e.g. an upstream task's XCom; the JSONL is built for you). Every line is
    validated first (a JSON object with a non-empty unique ``key`` and a ``request`` object); errors
    name the line numbers, and nothing is uploaded until the whole input is valid.

    :param source: the JSONL file to upload.
    :param requests: records to build the JSONL from.
    :param display_name: the file's display name.
    :param key_field: the field of ``requests`` records that holds each request's key.
    """

    template_fields: Sequence[str] = ("source", "requests", "display_name", "gemini_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"requests": "json"}

    def __init__(
        self,
        *,
        source: Any = None,
        requests: Any = None,
        display_name: str | None = None,
        key_field: str = "key",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (source is None) == (requests is None):
            raise GeminiBatchInputError(f"{self.task_id}: pass exactly one of source or requests.")
        require_filesystem(source, what="source")
        self.source = source
        self.requests = requests
        self.display_name = display_name
        self.key_field = key_field

    def execute(self, context: Context) -> str:
        self.hook.check_media_references(requests=self.requests, input_path=self.source)  # see docs/media.md
        if self.source is not None:
            uploaded = self.hook.upload_jsonl(self.source, display_name=self.display_name)
        else:
            uploaded = self.hook.upload_records(self.requests, display_name=self.display_name, key_field=self.key_field)
        return uploaded.name


class GeminiSplitInputOperator(GeminiBatchBaseOperator):
    """Split one batch input into shard files under the service's limits; return their paths for a mapped submit.

    The service takes at most 2 GB per input file and holds at most a model's enqueued-token limit
    of input across a project's active jobs, so a large input runs as several jobs. This task streams
    ``source`` line by line into ``<prefix>-00001.jsonl``, ``<prefix>-00002.jsonl``, ... in
    ``destination``, starting a new shard before any limit would be passed. Every line is validated
    (errors name line numbers; keys must be unique across the whole input), and the shards appear in
    ``destination`` only when the whole input passed: a bad input publishes nothing. Memory stays flat
    (8 bytes a key). No API call is made. The XCom is the list of shard paths, nothing else::

        split = GeminiSplitInputOperator(task_id="split", source="s3://bucket/in.jsonl", destination="s3://bucket/shards/")
        submit = GeminiSubmitBatchOperator.partial(task_id="submit", model="gemini-2.5-flash").expand(
            input_path=split.output
        )

    :param source: a JSONL file of any size (local path, ``s3://`` / ``gs://`` / ``file://`` URI or
        ``ObjectStoragePath``), or records (a list of ``{"key", "request"}`` dicts, or flat dicts with
        ``key_field`` beside the request body), e.g. an upstream task's XCom (templated).
    :param destination: the folder the shards go to; made if missing (templated).
    :param max_bytes: bytes per shard (default 128 MiB under the Files API's 2 GB limit; at most 2 GB).
    :param max_requests: requests per shard (default: no limit).
    :param max_tokens: estimated input tokens per shard, a quarter of each line's bytes
        (``sharding.estimate_tokens``). Default: ``[gemini_batch] enqueued_token_limit`` (the model's
        enqueued-token limit on your tier), else no limit. A shard over that limit could never start.
    :param key_field: the field of record ``source`` items that holds each request's key.
    :param embeddings: validate the lines as embedding requests (default: generation requests).
    :param prefix: the shard files' name start.
    """

    template_fields: Sequence[str] = (
        "source",
        "destination",
        "max_bytes",
        "max_requests",
        "max_tokens",
        "prefix",
        "gemini_conn_id",
    )

    def __init__(
        self,
        *,
        source: Any,
        destination: Any,
        max_bytes: int = DEFAULT_SHARD_MAX_BYTES,
        max_requests: int | None = None,
        max_tokens: int | None = None,
        key_field: str = "key",
        embeddings: bool = False,
        prefix: str = "shard",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        require_filesystem(source, what="source")
        require_filesystem(destination, what="destination")
        self.source = source
        self.destination = destination
        self.max_bytes = max_bytes
        self.max_requests = max_requests
        self.max_tokens = max_tokens
        self.key_field = key_field
        self.embeddings = embeddings
        self.prefix = prefix

    def execute(self, context: Context) -> list[str]:
        max_tokens = self.max_tokens if self.max_tokens is not None else enqueued_token_limit()
        paths = self.hook.split_input(
            self.source,
            self.destination,
            max_bytes=int(self.max_bytes),
            max_requests=None if self.max_requests is None else int(self.max_requests),
            max_tokens=None if max_tokens is None else int(max_tokens),
            key_field=self.key_field,
            kind="embed" if self.embeddings else "generate",
            prefix=self.prefix,
        )
        return [str(path) for path in paths]


class GeminiDeleteFileOperator(GeminiBatchBaseOperator):
    """Delete an uploaded or generated file. Fits cleanup tasks with ``trigger_rule="all_done"``.

    :param file_name: ``files/...`` (templated).
    :param ignore_missing: succeed when the file is gone (the service answers 403 for missing files).
    """

    template_fields: Sequence[str] = ("file_name", "gemini_conn_id")

    def __init__(self, *, file_name: str, ignore_missing: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_name = file_name
        self.ignore_missing = ignore_missing

    def execute(self, context: Context) -> None:
        try:
            self.hook.delete_file(self.file_name)
        except GeminiBatchPermissionError as exc:
            # A missing file answers 403, like a foreign one (docs/protocol.md "Files API"); a bad key
            # says API_KEY_INVALID.
            if not self.ignore_missing or exc.reason == "API_KEY_INVALID":
                raise
            self.log.info("File %s does not exist (or is not ours); nothing to delete", self.file_name)
            return
        self.log.info("Deleted file %s", self.file_name)


class GeminiDownloadResultsOperator(GeminiBatchBaseOperator):
    """Stream a finished job's results to a JSONL file and return a small manifest for XCom.

    One line per request: ``{"key", "response" | "error", "text", "usage"}`` for a generation job,
    ``{"key", "response" | "error", "embedding", "usage"}`` for an embeddings job, plus any other
    field the service's line had (such as fields of your input line it echoes back). ``text`` is the
    first candidate's text parts joined, ``embedding`` the vector's values (``null`` for an error),
    and ``usage`` the token counters (an embedding's ``tokenCount`` is its ``promptTokenCount`` and
    ``totalTokenCount``). Inline and file results alike are streamed; memory does not grow with the
    number of results, and results never go to XCom.

    All or nothing: every result the job should have is read (checked against the job's
    ``batchStats``, or against ``expected_keys``; a results file that ended early is read again), and
    the file appears at its destination only when complete. When results are still missing the task
    fails with ``GeminiBatchIncompleteResults``, and nothing new is left at the destination: no empty
    or partial file for a downstream load to pick up. ``GeminiBatchHook.write_results`` does the work.

    The manifest: ``path``, ``batch_name``, ``display_name``, ``result_count`` (lines written),
    ``expected_count`` (the job's request count, or the number of ``expected_keys``; ``None`` when the
    job reports none), ``succeeded_count``, ``failed_count``, ``missing_count`` (0: missing results fail
    the task instead), token ``usage`` (each counter summed), ``tokens`` by kind (``prompt``, ``cached``,
    ``output``, ``thinking``) and ``cost``: an estimate at batch and interactive prices from the price
    table (``pricing.py``; ``null`` for a model without a price), also logged in one line
    (``docs/caching-and-cost.md``).

    :param batch_name: ``batches/...`` (templated; usually the submit task's XCom).
    :param destination: a file path ending in ``.jsonl``, or in ``.jsonl.gz`` for a gzip-compressed
        file; anything else is a folder, where the file is named ``<display name>-<job id>.jsonl``
        (the display name without the submit operator's key, cleaned so that it cannot leave the
        folder; the same job always gets the same name). Local or object storage (templated).
    :param expected_keys: the keys of the job's requests, if known (templated): results are then
        checked key by key, a key read twice counts once, and missing keys are named in the error.
    :param skip_if_complete: when the destination already holds this job's complete results, download
        nothing and return the same manifest (a job announced twice, by its webhook and by the polling
        safety net, runs the downstream DAG twice harmlessly). A complete download leaves
        ``.<file name>.complete.json`` beside the file; a partial, foreign or altered file, or one
        written with other ``expected_keys`` or media settings, is downloaded over. ``False`` always
        downloads.
    :raises GeminiBatchIncompleteResults: results are missing after reading them again.

    **Several jobs** (the shards of one input, ``batch_name`` being a mapped submit task's XCom, a
    list): each job's results go to a file of its own in the ``destination`` folder, and one
    ``manifest.json`` there describes the set; it is also the task's XCom: totals, ``shards`` (each
    one's counts, or its ``error``), ``missing_keys`` (with ``input_paths``; the XCom repeats the first
    100) and ``complete``. A shard whose job did not succeed writes nothing and its requests count as
    missing; ``max_missing_results`` / ``max_missing_ratio`` say how many may be before the task fails
    (default: none), like the submit operator's partial-failure policy.

    :param input_paths: with several jobs, the shards' input files (the split task's XCom): every
        input key is then accounted for across the shards (templated).
    :param max_missing_results: with several jobs, the most requests allowed without a result (default 0).
    :param max_missing_ratio: with several jobs, the largest share allowed without a result (0.0 to 1.0).

    **Images and other media**: with ``media_destination``, a folder (local or object
    storage), every ``inlineData`` part (an image model's images) is written there as
    ``{key}-{n}.{ext}`` (the extension from its MIME type), decoded as the results stream by, and the
    line keeps ``"file"`` (the file's path or URI) in place of the base64, plus ``"media"``, the list of
    its files. The media files appear with the results file, never before. The manifest then counts
    them: ``media_count`` and ``media_bytes``. With several jobs, each job's media go to a folder of
    their own in it, named by the job's id (jobs may share keys), and the manifest counts them in total
    and per shard. See ``docs/media.md``.

    :param media_destination: the folder for media files (templated); default: media stay inline.
    :param keep_inline_media: keep the base64 in the line next to ``"file"``.
    """

    operator_extra_links = (GeminiBatchLink(),)
    template_fields: Sequence[str] = (
        "batch_name",
        "destination",
        "expected_keys",
        "input_paths",
        "media_destination",
        "gemini_conn_id",
    )

    def __init__(
        self,
        *,
        batch_name: str | Sequence[str | None],
        destination: Any,
        expected_keys: Collection[str] | None = None,
        skip_if_complete: bool = True,
        input_paths: Sequence[Any] | None = None,
        max_missing_results: int | None = 0,
        max_missing_ratio: float | None = None,
        media_destination: Any = None,
        keep_inline_media: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_name = batch_name
        require_filesystem(destination, what="destination")
        require_filesystem(media_destination, what="media_destination")
        self.media_destination = media_destination
        self.keep_inline_media = keep_inline_media
        self.destination = destination
        self.expected_keys = expected_keys
        self.skip_if_complete = skip_if_complete
        self.input_paths = input_paths
        self.missing_policy = MissingResultsPolicy(max_missing_results, max_missing_ratio)

    def execute(self, context: Context) -> dict[str, Any]:
        if not isinstance(self.batch_name, str):  # A mapped submit's XCom: the jobs of a sharded input.
            return self.hook.write_results_set(
                list(self.batch_name),
                self.destination,
                input_paths=None if self.input_paths is None else list(self.input_paths),
                policy=self.missing_policy,
                skip_if_complete=self.skip_if_complete,
                media_destination=self.media_destination,
                keep_inline_media=self.keep_inline_media,
            )
        batch = self.hook.get_batch(self.batch_name)
        summary = self.hook.write_results(
            batch,
            self.destination,
            expected_keys=self.expected_keys,
            skip_if_complete=self.skip_if_complete,
            media_destination=self.media_destination,
            keep_inline_media=self.keep_inline_media,
        )
        expected = summary.expected_count
        cost = run_cost(batch.model, summary.usage)
        self.log.info("%s", cost_line(batch.name, batch.model, summary.usage, cost["cost"], cost.get("cost_error")))
        return {
            "path": summary.path,
            "batch_name": summary.batch_name,
            "display_name": summary.display_name,
            "result_count": summary.result_count,
            "expected_count": expected,
            "succeeded_count": summary.succeeded_count,
            "failed_count": summary.failed_count,
            "missing_count": max(expected - summary.result_count, 0) if expected is not None else 0,
            "usage": summary.usage,
            "media_count": summary.media_count,
            "media_bytes": summary.media_bytes,
            **cost,
        }
