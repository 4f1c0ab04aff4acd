"""Helpers the emulator tests share: building inputs and driving the API with plain httpx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import httpx

VERSIONS = ("v1beta", "v1")
MODEL = "gemini-2.5-flash"
EMBEDDING_MODEL = "gemini-embedding-001"


def base_url(api: httpx.Client) -> str:
    """The emulator's base URL, without a trailing slash."""
    return str(api.base_url).rstrip("/")


def jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    """Encode rows as JSON Lines."""
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def prompt(text: str) -> dict[str, Any]:
    """A minimal GenerateContentRequest asking ``text``."""
    return {"contents": [{"parts": [{"text": text}], "role": "user"}]}


def start_upload(
    api: httpx.Client, version: str, size: int | None, body: dict[str, Any] | None = None
) -> httpx.Response:
    """Start a resumable upload; return the reply (its headers carry the upload URL)."""
    headers = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"}
    if size is not None:
        headers["X-Goog-Upload-Header-Content-Length"] = str(size)
        headers["X-Goog-Upload-Header-Content-Type"] = "jsonl"
    return api.post(f"/upload/{version}/files", headers=headers, json=body or {"file": {"displayName": "input"}})


def send_chunk(upload_url: str, data: bytes, offset: int, *, final: bool) -> httpx.Response:
    """Send one chunk to an upload URL, without an API key (as the SDK does)."""
    command = "upload, finalize" if final else "upload"
    headers = {"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)}
    return httpx.post(upload_url, headers=headers, content=data, timeout=30)


def upload(api: httpx.Client, version: str, data: bytes, *, display_name: str = "input") -> dict[str, Any]:
    """Upload ``data`` in one final chunk; return the File resource."""
    start = start_upload(api, version, len(data), {"file": {"displayName": display_name, "mimeType": "jsonl"}})
    final = send_chunk(start.headers["x-goog-upload-url"], data, 0, final=True)
    assert final.status_code == 200, final.text
    assert final.headers["x-goog-upload-status"] == "final"
    file: dict[str, Any] = final.json()["file"]
    return file


def create(
    api: httpx.Client, version: str, input_config: dict[str, Any], *, embedding: bool = False, **batch: Any
) -> dict[str, Any]:
    """Create a batch job (on an embedding model if ``embedding``); return the Operation from the create reply."""
    model, method = (EMBEDDING_MODEL, "asyncBatchEmbedContent") if embedding else (MODEL, "batchGenerateContent")
    response = api.post(f"/{version}/models/{model}:{method}", json={"batch": {"inputConfig": input_config, **batch}})
    assert response.status_code == 200, response.text
    operation: dict[str, Any] = response.json()
    return operation


def inline_config(*texts: str) -> dict[str, Any]:
    """An inline input config with one keyed request per text (keys k0, k1, ...)."""
    items = [{"request": prompt(text), "metadata": {"key": f"k{index}"}} for index, text in enumerate(texts)]
    return {"requests": {"requests": items}}


def get_batch(api: httpx.Client, version: str, name: str) -> dict[str, Any]:
    """Get a batch job's Operation."""
    response = api.get(f"/{version}/{name}")
    assert response.status_code == 200, response.text
    operation: dict[str, Any] = response.json()
    return operation


def wait_for_state(api: httpx.Client, version: str, name: str, state: str, timeout: float = 5.0) -> dict[str, Any]:
    """Poll a job until it reaches ``state`` (``BATCH_STATE_*``); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        operation = get_batch(api, version, name)
        if operation["metadata"]["state"] == state:
            return operation
        assert time.monotonic() < deadline, f"{name} stuck in {operation['metadata']['state']}"
        time.sleep(0.05)
