"""The deterministic fake model."""

from __future__ import annotations

import json
import math

from airflow_provider_gemini_batch.emulator._fake_model import answer_embedding, answer_generation

from ._support import prompt


def _text(outcome: dict) -> str:  # type: ignore[type-arg]
    text: str = outcome["response"]["candidates"][0]["content"]["parts"][0]["text"]
    return text


def test_same_prompt_same_answer_and_text_comes_from_the_prompt() -> None:
    first = answer_generation(prompt("What is the capital of France?"), "models/gemini-2.5-flash")
    again = answer_generation(prompt("What is the capital of France?"), "models/gemini-2.5-flash")
    other = answer_generation(prompt("Something else"), "models/gemini-2.5-flash")

    assert first == again
    assert _text(first) == "Echo: What is the capital of France?"
    assert first["response"]["responseId"] != other["response"]["responseId"]


def test_long_prompts_are_cut_and_usage_counts_words() -> None:
    request = {
        "contents": [
            {"parts": [{"text": "word " * 100}], "role": "user"},
            {"parts": [{"text": "ignored model turn"}], "role": "model"},
        ],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
    }

    response = answer_generation(request, "models/m")["response"]

    assert _text({"response": response}) == "Echo: " + ("word " * 100)[:60]
    usage = response["usageMetadata"]
    assert usage["promptTokenCount"] == 102
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]


def test_json_mime_type_gets_json_text() -> None:
    request = {**prompt("list three colours"), "generationConfig": {"response_mime_type": "application/json"}}

    assert json.loads(_text(answer_generation(request, "models/m"))) == {"echo": "Echo: list three colours"}


def test_marker_and_malformed_requests_become_item_errors() -> None:
    for request in (prompt("x [[fail]]"), {"contents": []}, "not an object"):
        outcome = answer_generation(request, "models/m")
        assert set(outcome) == {"error"}
        assert outcome["error"]["status"] == "INVALID_ARGUMENT"


def test_embeddings_are_deterministic_unit_vectors_of_the_requested_size() -> None:
    request = {"content": {"parts": [{"text": "hello there"}]}, "output_dimensionality": 16}

    first = answer_embedding(request)["response"]
    values = first["embedding"]["values"]

    assert first == answer_embedding(request)["response"]
    assert len(values) == 16
    assert math.isclose(sum(value * value for value in values), 1.0, rel_tol=1e-5)
    assert first["tokenCount"] == "2"
    assert answer_embedding({"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 4096})["error"]["code"] == 3
