"""Bare ``httpx`` calls to the Gemini endpoints, with none of the provider in between.

``raw_upload`` is a measured figure, not set-up: row 1's ceiling through the real upload
endpoint. ``raw_create_batch`` and ``raw_get_batch`` are set-up that ``bench_results.py`` still
does by hand; ``fixtures.results_job`` builds the same job through the hook and replaces them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _harness.lifecycle import MiB


def raw_upload(base_url: str, api_key: str, path: Path, *, mime_type: str = "jsonl") -> str:
    """Upload a file with plain httpx (one start, one final chunk); return its ``files/...`` name."""
    import httpx

    size = path.stat().st_size
    headers = {"x-goog-api-key": api_key}
    with httpx.Client(timeout=600) as client:
        start = client.post(
            f"{base_url}/upload/v1beta/files",
            json={"file": {"displayName": path.name, "mimeType": mime_type}},
            headers={
                **headers,
                "x-goog-upload-protocol": "resumable",
                "x-goog-upload-command": "start",
                "x-goog-upload-header-content-length": str(size),
                "x-goog-upload-header-content-type": mime_type,
            },
        )
        start.raise_for_status()
        with path.open("rb") as source:
            final = client.post(
                start.headers["x-goog-upload-url"],
                content=iter(lambda: source.read(MiB), b""),
                headers={
                    "content-length": str(size),
                    "x-goog-upload-command": "upload, finalize",
                    "x-goog-upload-offset": "0",
                },
            )
        final.raise_for_status()
        return str(final.json()["file"]["name"])


def raw_create_batch(base_url: str, api_key: str, body: Mapping[str, Any], model: str = "gemini-2.5-flash") -> str:
    """Create a batch job with plain httpx; return its ``batches/...`` name."""
    import httpx

    response = httpx.post(
        f"{base_url}/v1beta/models/{model}:batchGenerateContent",
        json={"batch": body},
        headers={"x-goog-api-key": api_key},
        timeout=3600,
    )
    response.raise_for_status()
    return str(response.json()["name"])


def raw_get_batch(base_url: str, api_key: str, name: str, *, timeout: float = 3600) -> dict[str, Any]:
    """Get a batch job's Operation JSON with plain httpx."""
    import httpx

    response = httpx.get(f"{base_url}/v1beta/{name}", headers={"x-goog-api-key": api_key}, timeout=timeout)
    response.raise_for_status()
    operation: dict[str, Any] = response.json()
    return operation
