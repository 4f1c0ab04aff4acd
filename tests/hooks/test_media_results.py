"""``write_results(media_destination=...)`` against the emulator: images become files, published with the results."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchIncompleteResults
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import Batch

IMAGE_MODEL = "gemini-2.5-flash-image"


@pytest.fixture
def hook(hook: GeminiBatchHook, gemini_connection: EmulatorHandle) -> GeminiBatchHook:
    """The hooks conftest's hook, on an emulator whose jobs run for a tenth of a second."""
    gemini_connection.control.configure(running_seconds=0.1)
    return hook


def request(text: str, **extra: Any) -> dict[str, Any]:
    return {"contents": [{"parts": [{"text": text}], "role": "user"}], **extra}


def finished(hook: GeminiBatchHook, name: str) -> Batch:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        batch = hook.get_batch(name)
        if batch.state.is_terminal:
            return batch
        time.sleep(0.05)
    raise AssertionError(f"{name} did not finish")


def image_job(hook: GeminiBatchHook, tmp_path: Path, *, inline: bool) -> Batch:
    images = {"generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}
    records = [
        {"key": "fox", "request": request("a red fox", **images)},
        {"key": "owl", "request": request("an owl at night", **images)},
        {"key": "bad", "request": request("[[fail]] no image")},
    ]
    if inline:
        batch = hook.create_batch(IMAGE_MODEL, requests=records)
    else:
        path = tmp_path / "in.jsonl"
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
        batch = hook.create_batch(IMAGE_MODEL, input_file=hook.upload_jsonl(path).name)
    return finished(hook, batch.name)


@pytest.mark.parametrize("inline", [False, True], ids=["file", "inline"])
def test_images_are_written_as_files_and_the_lines_point_at_them(
    hook: GeminiBatchHook, tmp_path: Path, inline: bool
) -> None:
    batch = image_job(hook, tmp_path, inline=inline)
    summary = hook.write_results(batch, tmp_path / "out.jsonl", media_destination=tmp_path / "images")

    lines = {line["key"]: line for line in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert sorted(path.name for path in (tmp_path / "images").iterdir()) == ["fox-0.png", "owl-0.png"]
    fox = lines["fox"]
    assert fox["text"].startswith("Echo: a red fox")
    assert fox["media"] == [str(tmp_path / "images" / "fox-0.png")]
    blob = fox["response"]["candidates"][0]["content"]["parts"][1]["inlineData"]
    assert blob == {"mimeType": "image/png", "file": fox["media"][0]}
    assert Path(fox["media"][0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "error" in lines["bad"]
    assert "media" not in lines["bad"]
    sizes = sum(path.stat().st_size for path in (tmp_path / "images").iterdir())
    assert (summary.media_count, summary.media_bytes) == (2, sizes)
    assert (summary.succeeded_count, summary.failed_count) == (2, 1)


def test_object_storage_media_destination(hook: GeminiBatchHook, tmp_path: Path) -> None:
    batch = image_job(hook, tmp_path, inline=False)
    uri = f"file://{tmp_path}/store/images"
    summary = hook.write_results(batch, f"file://{tmp_path}/store/out.jsonl", media_destination=uri)
    assert summary.media_count == 2
    line = next(
        json.loads(text) for text in (tmp_path / "store" / "out.jsonl").read_text().splitlines() if '"owl"' in text
    )
    assert line["media"][0].endswith("images/owl-0.png")
    assert sorted(path.name for path in (tmp_path / "store" / "images").iterdir()) == ["fox-0.png", "owl-0.png"]


def test_nothing_half_written_is_left_when_results_are_missing(hook: GeminiBatchHook, tmp_path: Path) -> None:
    batch = image_job(hook, tmp_path, inline=False)
    with pytest.raises(GeminiBatchIncompleteResults):
        hook.write_results(
            batch, tmp_path / "out.jsonl", expected_keys=["fox", "owl", "bad", "lost"], media_destination=tmp_path / "m"
        )
    assert not (tmp_path / "out.jsonl").exists()
    assert list((tmp_path / "m").iterdir()) == [], "no image published, no partial left"


def test_a_complete_download_is_not_skipped_when_the_media_settings_differ(
    hook: GeminiBatchHook, tmp_path: Path
) -> None:
    """The completeness note vouches for the file as written: inline base64, or pointers into one media folder."""
    batch = image_job(hook, tmp_path, inline=False)
    out = tmp_path / "out.jsonl"
    assert hook.write_results(batch, out, skip_if_complete=True).media_count == 0  # Images inline.

    summary = hook.write_results(batch, out, skip_if_complete=True, media_destination=tmp_path / "a")
    assert (summary.media_count, sorted(p.name for p in (tmp_path / "a").iterdir())) == (2, ["fox-0.png", "owl-0.png"])
    assert all(
        line.get("media", [""])[0].startswith(str(tmp_path / "a"))
        for line in map(json.loads, out.read_text().splitlines())
        if line["key"] != "bad"
    )

    summary = hook.write_results(batch, out, skip_if_complete=True, media_destination=tmp_path / "b")
    assert (summary.media_count, len(list((tmp_path / "b").iterdir()))) == (2, 2)
    summary = hook.write_results(
        batch, out, skip_if_complete=True, media_destination=tmp_path / "b", keep_inline_media=True
    )
    assert '"data"' in out.read_text()

    written = out.stat().st_mtime_ns
    again = hook.write_results(
        batch, out, skip_if_complete=True, media_destination=tmp_path / "b", keep_inline_media=True
    )
    assert (again, out.stat().st_mtime_ns) == (summary, written), "the same settings again: skipped"


def test_grounding_metadata_and_function_calls_survive_into_the_results_line(
    hook: GeminiBatchHook, tmp_path: Path
) -> None:
    search = request("Who won the 2024 Tour de France?", tools=[{"googleSearch": {}}])
    declaration = {"name": "lookup", "parameters": {"type": "OBJECT", "properties": {"q": {"type": "STRING"}}}}
    calls = request("Find the invoice", tools=[{"functionDeclarations": [declaration]}])
    code = request("Sum 1 to 10", tools=[{"codeExecution": {}}])
    path = tmp_path / "tools.jsonl"
    path.write_text(
        "".join(json.dumps({"key": k, "request": r}) + "\n" for k, r in [("s", search), ("f", calls), ("c", code)])
    )
    batch = finished(hook, hook.create_batch("gemini-2.5-flash", input_file=hook.upload_jsonl(path).name).name)
    sent = {item["key"]: item["request"] for item in map(json.loads, hook_input_lines(hook, batch))}
    assert sent["s"]["tools"] == [{"googleSearch": {}}], "tools go through untouched"

    hook.write_results(batch, tmp_path / "out.jsonl", media_destination=tmp_path / "media")
    lines = {line["key"]: line for line in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    grounding = lines["s"]["response"]["candidates"][0]["groundingMetadata"]
    assert grounding["webSearchQueries"] == ["Who won the 2024 Tour de France?"]
    assert grounding["groundingChunks"][0]["web"]["uri"].startswith("https://")
    assert lines["f"]["response"]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "lookup"
    parts = lines["c"]["response"]["candidates"][0]["content"]["parts"]
    assert "executableCode" in parts[0]
    assert "codeExecutionResult" in parts[1]


def hook_input_lines(hook: GeminiBatchHook, batch: Batch) -> list[bytes]:
    assert batch.input_file is not None
    return b"".join(hook.client.iter_file_bytes(batch.input_file)).splitlines()
