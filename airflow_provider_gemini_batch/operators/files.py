"""Operators on files: upload batch input, download results, delete files."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic_core import to_json as _to_json

from airflow_provider_gemini_batch.exceptions import GeminiBatchError, GeminiBatchInputError, GeminiBatchPermissionError
from airflow_provider_gemini_batch.hooks._sources import as_storage_path, open_destination
from airflow_provider_gemini_batch.models import Batch, BatchResult, BatchState
from airflow_provider_gemini_batch.operators.batch import GeminiBatchBaseOperator
from airflow_provider_gemini_batch.storage import require_filesystem

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_USAGE_FIELDS = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "totalTokenCount")
_LINES_PER_WRITE = 1000


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
        if self.source is not None:
            uploaded = self.hook.upload_jsonl(self.source, display_name=self.display_name)
        else:
            uploaded = self.hook.upload_records(self.requests, display_name=self.display_name, key_field=self.key_field)
        return uploaded.name


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
            # A missing file answers 403, like a foreign one (PROTOCOL.md); a bad key says API_KEY_INVALID.
            if not self.ignore_missing or exc.reason == "API_KEY_INVALID":
                raise
            self.log.info("File %s does not exist (or is not ours); nothing to delete", self.file_name)
            return
        self.log.info("Deleted file %s", self.file_name)


class GeminiDownloadResultsOperator(GeminiBatchBaseOperator):
    """Stream a finished job's results to a JSONL file and return a small manifest for XCom.

    One line per request: ``{"key", "response" | "error", "text", "usage"}``, plus any other field the
    service's line had (such as fields of your input line it echoes back). Inline and file results
    alike are streamed; memory does not grow with the number of results, and results never go to XCom.

    All or nothing: every result the job should have is read (``GeminiBatchHook.iter_results`` checks
    the count against the job's ``batchStats``, or against ``expected_keys``, and reads a results file
    that ended early again), and the file appears at its destination only when complete. When results
    are still missing the task fails with ``GeminiBatchIncompleteResults``, and nothing new is left at
    the destination: no empty or partial file for a downstream load to pick up.

    The manifest: ``path``, ``batch_name``, ``display_name``, ``result_count`` (lines written),
    ``expected_count`` (the job's request count, or the number of ``expected_keys``; ``None`` when the
    job reports none), ``succeeded_count``, ``failed_count``, ``missing_count`` (0: missing results fail
    the task instead) and token ``usage``.

    :param batch_name: ``batches/...`` (templated; usually the submit task's XCom).
    :param destination: a folder, or a file path ending in ``.jsonl``: local or object storage
        (templated). In a folder the file is named after the job's display name and id, sanitised
        so that it cannot escape the folder.
    :param expected_keys: the keys of the job's requests, if known (templated): results are then
        checked key by key, a key read twice counts once, and missing keys are named in the error.
    :raises GeminiBatchIncompleteResults: results are missing after reading them again.
    """

    template_fields: Sequence[str] = ("batch_name", "destination", "expected_keys", "gemini_conn_id")

    def __init__(
        self, *, batch_name: str, destination: Any, expected_keys: Collection[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.batch_name = batch_name
        self.destination = destination
        self.expected_keys = expected_keys

    def execute(self, context: Context) -> dict[str, Any]:
        batch = self.hook.get_batch(self.batch_name)
        if batch.state is not BatchState.SUCCEEDED:
            raise GeminiBatchError(f"Batch {batch.name} is {batch.state.short_name}: only a SUCCEEDED job has results.")
        path = results_path(self.destination, batch)
        succeeded = failed = 0
        usage = dict.fromkeys(_USAGE_FIELDS, 0)
        pending: list[bytes] = []
        expected = self.hook.expected_result_count(batch, self.expected_keys)
        with open_destination(path) as out:
            for result in self.hook.iter_results(batch, expected_keys=self.expected_keys):
                if result.succeeded:
                    succeeded += 1
                else:
                    failed += 1
                result_usage = result.usage
                for name, value in result_usage.items():
                    if name in usage:
                        usage[name] += value
                pending.append(normalized_line(result, result_usage))
                if len(pending) == _LINES_PER_WRITE:  # One write call per thousand lines, not one per line.
                    out.write(b"".join(pending))
                    pending.clear()
            out.write(b"".join(pending))
        self.log.info("Wrote %d results of %s to %s", succeeded + failed, batch.name, path)
        return {
            "path": str(path),
            "batch_name": batch.name,
            "display_name": batch.display_name,
            "result_count": succeeded + failed,
            "expected_count": expected,
            "succeeded_count": succeeded,
            "failed_count": failed,
            "missing_count": max(expected - succeeded - failed, 0) if expected is not None else 0,
            "usage": usage,
        }


def normalized_line(result: BatchResult, usage: dict[str, int] | None = None) -> bytes:
    """One results line: the key, the text, the raw response or the error, and token usage.

    A results-file line is kept byte for byte, with ``text`` and ``usage`` appended to it: the
    response is never serialised again, which is most of the cost of writing a line. Inline
    results, and lines without a key or with a ``text`` or ``usage`` field of their own, are rebuilt
    with the same fields (a field of their own named ``text`` or ``usage`` gives way to ours).

    :param usage: ``result.usage``, when the caller has it already.
    """
    if usage is None:
        usage = result.usage
    raw, extra = result.raw, result.extra
    has_outcome = result.response is not None or result.error is not None  # so the object has a member
    plain = not extra or ("text" not in extra and "usage" not in extra)
    if raw is not None and has_outcome and result.key is not None and plain:
        body = raw.rstrip()
        if body[-1:] == b"}":
            return b"".join((body[:-1], b',"text":', _to_json(result.text), b',"usage":', _to_json(usage), b"}\n"))
    line = result.as_dict()
    line["text"] = result.text
    line["usage"] = usage
    return _to_json(line) + b"\n"  # Compact UTF-8 like json.dumps, and twice as fast.


def results_path(destination: Any, batch: Batch) -> Any:
    """The results file for ``batch`` under ``destination``; never outside it."""
    if not destination:
        raise GeminiBatchInputError("destination is empty: pass a folder or a .jsonl file path.")
    if str(destination).endswith(".jsonl"):
        return destination
    stem = _UNSAFE_FILE_CHARACTERS.sub("_", batch.display_name or "batch").strip("._-")[:100] or "batch"
    file_name = f"{stem}-{batch.id}.results.jsonl"
    storage_path = as_storage_path(destination)
    if storage_path is not None:
        return storage_path / file_name
    folder = os.path.realpath(os.fspath(destination))
    path = os.path.realpath(os.path.join(folder, file_name))
    if os.path.dirname(path) != folder:
        raise GeminiBatchInputError(f"The results file name {file_name!r} would leave {folder!r}; refusing to write.")
    return path
