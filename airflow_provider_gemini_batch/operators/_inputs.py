"""Turn what a user gives (records, a JSONL path, a file name) into a validated batch input."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from airflow_provider_gemini_batch.batch_input import records_to_jsonl, validate_jsonl
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.hooks._api import inline_item
from airflow_provider_gemini_batch.hooks._sources import open_source
from airflow_provider_gemini_batch.models import GeminiFile

# The service rejects create bodies over 20,971,520 bytes ("Request payload size exceeds the limit");
# keep a margin for the envelope (display name, extra batch fields).
INLINE_LIMIT_BYTES = 20_971_520 - 64 * 1024


@dataclass(frozen=True)
class PreparedInput:
    """Exactly one of inline ``requests`` or an uploaded ``input_file``."""

    requests: list[dict[str, Any]] | None = None
    input_file: str | None = None


def upload_jsonl(hook: GeminiBatchHook, source: Any, display_name: str | None) -> GeminiFile:
    """Validate a JSONL file (local path, URI or ObjectStoragePath), then upload it."""
    with open_source(source) as (stream, _size, name):
        validate_jsonl(stream, repr(name))
    return hook.upload_file(source, display_name=display_name)


def upload_records(hook: GeminiBatchHook, records: Any, display_name: str | None, key_field: str) -> GeminiFile:
    """Validate records and write them as JSONL to a temporary file, then upload it."""
    with tempfile.TemporaryDirectory(prefix="gemini-batch-") as folder:
        path = os.path.join(folder, "requests.jsonl")
        with open(path, "wb") as out:
            records_to_jsonl(_records(records), out, key_field=key_field)
        return hook.upload_file(path, display_name=display_name or "requests.jsonl")


def prepare_input(
    hook: GeminiBatchHook,
    *,
    requests: Any,
    input_file: str | None,
    input_path: Any,
    display_name: str | None,
    key_field: str,
) -> PreparedInput:
    """Validate the input; upload it when it is a path or when inline requests are over the 20 MB limit."""
    if input_file is not None:
        return PreparedInput(input_file=input_file)
    if input_path is not None:
        return PreparedInput(input_file=upload_jsonl(hook, input_path, display_name).name)
    with tempfile.SpooledTemporaryFile(max_size=INLINE_LIMIT_BYTES) as spool:
        summary = records_to_jsonl(_records(requests), spool, key_field=key_field)
        spool.seek(0)
        if summary.byte_count <= INLINE_LIMIT_BYTES:
            items = [json.loads(line) for line in spool]
            body_bytes = inline_body_bytes(items)
            if body_bytes <= INLINE_LIMIT_BYTES:
                return PreparedInput(requests=items)
            spool.seek(0)
        hook.log.info(
            "Inline requests would make a create body over the %d-byte limit: uploading them as a file",
            INLINE_LIMIT_BYTES,
        )
        uploaded = hook.upload_file(spool, display_name=display_name or "requests.jsonl")
    return PreparedInput(input_file=uploaded.name)


def inline_body_bytes(items: list[dict[str, Any]]) -> int:
    """Bytes the inline items take in the create body, encoded as httpx encodes JSON.

    Measured on the wire shape, not the JSONL: each key moves into ``"metadata": {"key": ...}``.
    """
    wire = [inline_item(item, index) for index, item in enumerate(items)]
    return len(json.dumps(wire, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())


def _records(records: Any) -> Any:
    # A JSON string (e.g. an XCom rendered into a template) is parsed; anything iterable is used as is.
    if isinstance(records, (str, bytes)):
        return json.loads(records)
    return records
