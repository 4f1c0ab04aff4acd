"""Fidelity for the fake model's image and tool shapes: google-genai reads them into its own types, unmodified."""

from __future__ import annotations

import time

from google import genai
from google.genai import types


def finished(client: genai.Client, name: str) -> types.BatchJob:
    deadline = time.monotonic() + 10
    while (job := client.batches.get(name=name)).state != types.JobState.JOB_STATE_SUCCEEDED:
        assert time.monotonic() < deadline, job.state
        time.sleep(0.05)
    return job


def test_the_sdk_reads_an_image_models_png_and_text(client: genai.Client) -> None:
    request: types.InlinedRequestOrDict = {
        "contents": [{"parts": [{"text": "a lighthouse at dawn"}], "role": "user"}],
        "config": {"response_modalities": ["TEXT", "IMAGE"]},
        "metadata": {"key": "lighthouse"},
    }
    job = finished(client, client.batches.create(model="gemini-2.5-flash-image", src=[request]).name)

    assert job.dest is not None
    assert job.dest.inlined_responses is not None
    response = job.dest.inlined_responses[0].response
    assert response is not None
    assert response.text == "Echo: a lighthouse at dawn"
    parts = response.candidates[0].content.parts  # type: ignore[index,union-attr]
    assert parts is not None
    assert parts[1].inline_data is not None
    assert parts[1].inline_data.mime_type == "image/png"
    assert (parts[1].inline_data.data or b"")[:8] == b"\x89PNG\r\n\x1a\n"  # the SDK decoded the base64


def test_the_sdk_reads_grounding_metadata_and_function_calls(client: genai.Client) -> None:
    weather = types.FunctionDeclaration(
        name="get_weather",
        parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}),
    )
    requests: list[types.InlinedRequestOrDict] = [
        {
            "contents": [{"parts": [{"text": "Latest Mars news?"}], "role": "user"}],
            "config": {"tools": [types.Tool(google_search=types.GoogleSearch())]},
            "metadata": {"key": "search"},
        },
        {
            "contents": [{"parts": [{"text": "Weather in Oslo?"}], "role": "user"}],
            "config": {"tools": [types.Tool(function_declarations=[weather])]},
            "metadata": {"key": "call"},
        },
    ]
    job = finished(client, client.batches.create(model="gemini-2.5-flash", src=requests).name)

    assert job.dest is not None
    assert job.dest.inlined_responses is not None
    by_key = {item.metadata["key"]: item.response for item in job.dest.inlined_responses if item.metadata}
    grounding = by_key["search"].candidates[0].grounding_metadata  # type: ignore[union-attr,index]
    assert grounding is not None
    assert grounding.web_search_queries == ["Latest Mars news?"]
    assert grounding.grounding_chunks[0].web.uri.startswith("https://")  # type: ignore[index,union-attr]
    calls = by_key["call"].function_calls  # type: ignore[union-attr]
    assert calls is not None
    assert (calls[0].name, calls[0].args) == ("get_weather", {"city": "Weather in Oslo?"})
