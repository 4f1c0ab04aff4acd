"""A deterministic stand-in for the model: the same request always gets the same answer.

- Text generation answers ``"Echo: "`` plus the first 60 characters of the joined user text (as a
  JSON object when ``generationConfig.responseMimeType`` is ``application/json``), with word
  counts as token counts.
- An image model asked for ``IMAGE`` output adds a small PNG part; ``tools`` add grounding
  metadata, a function call or code and its result (``_tool_answers``).
- Embeddings are unit vectors derived from a hash of the text, of ``outputDimensionality``
  (default 768) values.
- A prompt containing :data:`FAILURE_MARKER` gets a per-item INVALID_ARGUMENT error instead of
  a response, and so does a request that is not a valid request: item failures never fail the
  job (docs/protocol.md, "SUCCEEDED does not mean the requests succeeded").

Each ``answer_*`` function returns the item's outcome: ``{"response": ...}`` or ``{"error": ...}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

from airflow_provider_gemini_batch.emulator._tool_answers import add_image_and_tools
from airflow_provider_gemini_batch.emulator._wire import int64, omit_empty, read_field

__all__ = [
    "DEFAULT_EMBEDDING_DIMENSION",
    "ECHO_PREFIX",
    "FAILURE_MARKER",
    "answer_embedding",
    "answer_generation",
    "item_error",
    "rejects",
    "token_count",
]

FAILURE_MARKER = "[[fail]]"
ECHO_PREFIX = "Echo: "
DEFAULT_EMBEDDING_DIMENSION = 768
_MAX_EMBEDDING_DIMENSION = 3072
_ECHO_LENGTH = 60


class _InvalidRequest(ValueError):
    """The item cannot be answered; its message becomes the per-item error message."""


def item_error(message: str) -> dict[str, Any]:
    """Return the per-item outcome for a request the model rejects (google.rpc.Status)."""
    return {"error": {"code": 3, "message": message, "status": "INVALID_ARGUMENT"}}


def answer_generation(request: object, model: str, cached_tokens: int = 0) -> dict[str, Any]:
    """Answer one GenerateContentRequest the way the fake model always does.

    :param cached_tokens: the tokens of the context cache the request names (``cachedContent``): they
        count in ``promptTokenCount`` and are reported as ``cachedContentTokenCount``, as the service does.
    """
    try:
        user_text, prompt_words = _generation_prompt(request)
    except _InvalidRequest as error:
        return item_error(str(error))
    assert isinstance(request, Mapping)  # checked by _generation_prompt
    text = ECHO_PREFIX + user_text[:_ECHO_LENGTH]
    generation_config = read_field(request, "generationConfig", {})
    if read_field(generation_config, "responseMimeType") == "application/json":
        text = json.dumps({"echo": text})
    reply_words = len(text.split())
    model_id = model.rsplit("/", 1)[-1]
    candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}
    add_image_and_tools(candidate, request, model, user_text)
    return {
        "response": {
            "candidates": [candidate],
            "usageMetadata": omit_empty(
                {
                    "promptTokenCount": prompt_words + cached_tokens,
                    "cachedContentTokenCount": cached_tokens,
                    "candidatesTokenCount": reply_words,
                    "totalTokenCount": prompt_words + cached_tokens + reply_words,
                }
            ),
            "modelVersion": model_id,
            "responseId": _digest_id(f"{model_id}\n{user_text}"),
        }
    }


def answer_embedding(request: object) -> dict[str, Any]:
    """Answer one EmbedContentRequest: a deterministic unit vector and a token count."""
    try:
        text, dimension = _embedding_prompt(request)
    except _InvalidRequest as error:
        return item_error(str(error))
    response = {"embedding": {"values": _unit_vector(text, dimension)}, "tokenCount": int64(len(text.split()))}
    return {"response": omit_empty(response)}


def token_count(contents: object, system_instruction: object = None) -> int:
    """Count tokens as the fake model does, in words: every text part of ``contents`` and the system instruction.

    ``countTokens`` answers this for a request's contents, and a context cache holds this many tokens.
    """
    every_content = contents if isinstance(contents, list) else [contents]
    texts = [text for content in every_content for text in _texts(content)] + _texts(system_instruction)
    return len(" ".join(texts).split())


def rejects(request: object, *, embedding: bool) -> bool:
    """Tell, without answering it, whether the fake model will reject ``request``."""
    try:
        if embedding:
            _embedding_prompt(request)
        else:
            _generation_prompt(request)
    except _InvalidRequest:
        return True
    return False


def _generation_prompt(request: object) -> tuple[str, int]:
    """Return the joined user text and the prompt's word count (system instruction included)."""
    if not isinstance(request, Mapping):
        raise _InvalidRequest("Invalid request: expected a GenerateContentRequest object.")
    contents = read_field(request, "contents")
    if not isinstance(contents, list) or not contents:
        raise _InvalidRequest("Invalid request: contents must not be empty.")
    user_texts = [
        text for content in contents if read_field(content, "role", "user") != "model" for text in _texts(content)
    ]
    system_texts = _texts(read_field(request, "systemInstruction"))
    every_text = " ".join(user_texts + system_texts)
    _refuse_marked(every_text)
    user_text = " ".join(user_texts)
    return user_text, max(1, len(every_text.split()))


def _embedding_prompt(request: object) -> tuple[str, int]:
    """Return the text to embed and the requested dimensionality."""
    if not isinstance(request, Mapping):
        raise _InvalidRequest("Invalid request: expected an EmbedContentRequest object.")
    content = read_field(request, "content")
    if not isinstance(content, Mapping):
        raise _InvalidRequest("Invalid request: content is required.")
    text = " ".join(_texts(content))
    _refuse_marked(text)
    dimension = read_field(request, "outputDimensionality") or DEFAULT_EMBEDDING_DIMENSION
    if not isinstance(dimension, int) or not 1 <= dimension <= _MAX_EMBEDDING_DIMENSION:
        raise _InvalidRequest(f"Invalid output_dimensionality {dimension!r}: use 1 to {_MAX_EMBEDDING_DIMENSION}.")
    return text, dimension


def _refuse_marked(text: str) -> None:
    if FAILURE_MARKER in text:
        raise _InvalidRequest(f"Request rejected: the prompt contains the emulator failure marker {FAILURE_MARKER}.")


def _texts(content: object) -> list[str]:
    """Return the text parts of one Content (other part kinds carry no text)."""
    parts = read_field(content, "parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list):
        return []
    return [part["text"] for part in parts if isinstance(part, Mapping) and isinstance(part.get("text"), str)]


def _digest_id(seed: str) -> str:
    """A response id derived from the prompt, shaped like the service's (22 url-safe characters)."""
    digest = hashlib.sha256(seed.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _unit_vector(text: str, dimension: int) -> list[float]:
    """Hash ``text`` into ``dimension`` floats, then scale them to unit length."""
    words: list[int] = []
    block = 0
    while len(words) < dimension:
        words.extend(struct.unpack(">8I", hashlib.sha256(f"{block}:{text}".encode()).digest()))
        block += 1
    values = [word / 2**31 - 1.0 for word in words[:dimension]]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [round(value / norm, 7) for value in values]
