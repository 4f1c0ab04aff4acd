"""What the fake model adds for images and tools: a small PNG, grounding metadata, function calls, code runs.

Shapes as the service sends them (``docs/media.md``): an image model asked with
``generationConfig.responseModalities`` containing ``IMAGE`` answers a text part and an
``inlineData`` PNG; a request with ``tools`` gets ``groundingMetadata`` (``googleSearch``), a
``functionCall`` part (``functionDeclarations``) or ``executableCode`` and ``codeExecutionResult``
parts (``codeExecution``). Deterministic, like the rest of the fake model.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Mapping
from typing import Any

from airflow_provider_gemini_batch.emulator._wire import read_field

__all__ = ["PNG_SIDE", "add_image_and_tools", "png"]

#: Width and height of the fake model's images, in pixels.
PNG_SIDE = 16
_SNIPPET = 60


def png(seed: str, side: int = PNG_SIDE) -> bytes:
    """A valid ``side`` x ``side`` RGB PNG whose colours come from ``seed`` (zlib and struct, no imaging library)."""
    red, green, blue = hashlib.sha256(seed.encode()).digest()[:3]
    row = b"\x00" + bytes((red, green, blue)) * side  # filter byte "none", then the pixels
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8 bits, truecolour
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(row * side))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def add_image_and_tools(candidate: dict[str, Any], request: Mapping[str, Any], model: str, user_text: str) -> None:
    """Change ``candidate`` (text only so far) as an image model or the request's tools would."""
    parts: list[dict[str, Any]] = candidate["content"]["parts"]
    config = read_field(request, "generationConfig", {}) or {}
    modalities = read_field(config, "responseModalities") or []
    if "image" in model.rsplit("/", 1)[-1] and "IMAGE" in modalities:
        parts.append({"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png(user_text)).decode()}})
    for tool in read_field(request, "tools") or []:
        if not isinstance(tool, Mapping):
            continue
        declarations = read_field(tool, "functionDeclarations")
        if isinstance(declarations, list) and declarations and isinstance(declarations[0], Mapping):
            parts[:] = [{"functionCall": _call(declarations[0], user_text)}]
            return
        if read_field(tool, "codeExecution") is not None:
            code = f"print({user_text[:_SNIPPET]!r})"
            parts[:0] = [
                {"executableCode": {"language": "PYTHON", "code": code}},
                {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": user_text[:_SNIPPET] + "\n"}},
            ]
        if read_field(tool, "googleSearch") is not None:
            candidate["groundingMetadata"] = _grounding(parts[-1].get("text") or "", user_text)


def _call(declaration: Mapping[str, Any], user_text: str) -> dict[str, Any]:
    """A call of the first declared function, every string parameter given the prompt."""
    properties = read_field(read_field(declaration, "parameters", {}) or {}, "properties", {}) or {}
    args = {
        name: user_text[:_SNIPPET]
        for name, schema in properties.items()
        if isinstance(schema, Mapping) and str(schema.get("type", "")).upper() == "STRING"
    }
    return {"name": declaration.get("name", "function"), "args": args}


def _grounding(answer: str, user_text: str) -> dict[str, Any]:
    digest = hashlib.sha256(user_text.encode()).hexdigest()[:12]
    return {
        "webSearchQueries": [user_text[:_SNIPPET]],
        "searchEntryPoint": {"renderedContent": f"<div>{digest}</div>"},
        "groundingChunks": [{"web": {"uri": f"https://example.com/search/{digest}", "title": "example.com"}}],
        "groundingSupports": [
            {"segment": {"startIndex": 0, "endIndex": len(answer), "text": answer}, "groundingChunkIndices": [0]}
        ],
    }
