"""The fake model's images and tool shapes: what an image model and a request with ``tools`` get back."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

from airflow_provider_gemini_batch.emulator._fake_model import answer_generation

from ._support import prompt


def image_request(text: str, modalities: list[str]) -> dict[str, Any]:
    return {**prompt(text), "generationConfig": {"responseModalities": modalities}}


def png_size(data: bytes) -> tuple[int, int]:
    """Check a PNG the way a decoder would (signature, chunk CRCs, pixel data) and return its size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, width, height, pixels = 8, 0, 0, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            pixels += body
        position += 12 + length
    assert kind == b"IEND"
    assert len(zlib.decompress(pixels)) == height * (1 + 3 * width)  # a filter byte and RGB per row
    return width, height


def test_an_image_model_asked_for_images_answers_text_and_a_valid_png() -> None:
    answer = answer_generation(image_request("a red fox", ["TEXT", "IMAGE"]), "models/gemini-2.5-flash-image")
    parts = answer["response"]["candidates"][0]["content"]["parts"]
    assert parts[0]["text"].startswith("Echo: a red fox")
    blob = parts[1]["inlineData"]
    assert blob["mimeType"] == "image/png"
    assert png_size(base64.b64decode(blob["data"])) == (16, 16)
    other = answer_generation(image_request("a blue whale", ["IMAGE"]), "models/gemini-2.5-flash-image")
    assert other["response"]["candidates"][0]["content"]["parts"][1]["inlineData"]["data"] != blob["data"]


def test_no_image_without_image_modality_or_from_a_text_model() -> None:
    for request, model in [
        (image_request("a fox", ["TEXT"]), "models/gemini-2.5-flash-image"),
        (image_request("a fox", ["TEXT", "IMAGE"]), "models/gemini-2.5-flash"),
    ]:
        parts = answer_generation(request, model)["response"]["candidates"][0]["content"]["parts"]
        assert [list(part) for part in parts] == [["text"]]


def test_google_search_answers_with_grounding_metadata() -> None:
    request = {**prompt("Who won the 2024 Tour de France?"), "tools": [{"googleSearch": {}}]}
    candidate = answer_generation(request, "models/gemini-2.5-flash")["response"]["candidates"][0]
    grounding = candidate["groundingMetadata"]
    assert grounding["webSearchQueries"] == ["Who won the 2024 Tour de France?"]
    assert grounding["groundingChunks"][0]["web"]["uri"].startswith("https://")
    assert grounding["groundingSupports"][0]["groundingChunkIndices"] == [0]


def test_function_declarations_answer_with_a_function_call() -> None:
    declaration = {
        "name": "get_weather",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
    }
    request = {**prompt("Weather in Paris?"), "tools": [{"function_declarations": [declaration]}]}
    parts = answer_generation(request, "models/gemini-2.5-flash")["response"]["candidates"][0]["content"]["parts"]
    assert parts == [{"functionCall": {"name": "get_weather", "args": {"city": "Weather in Paris?"}}}]


def test_code_execution_answers_with_code_and_its_result() -> None:
    request = {**prompt("Sum 1 to 10"), "tools": [{"codeExecution": {}}]}
    parts = answer_generation(request, "models/gemini-2.5-flash")["response"]["candidates"][0]["content"]["parts"]
    kinds = [next(iter(part)) for part in parts]
    assert kinds == ["executableCode", "codeExecutionResult", "text"]
    assert parts[0]["executableCode"]["language"] == "PYTHON"
    assert parts[1]["codeExecutionResult"]["outcome"] == "OUTCOME_OK"
