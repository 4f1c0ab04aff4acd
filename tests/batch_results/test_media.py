"""``MediaExtractor``: every ``inlineData`` part of a results line becomes a file, and the line points at it."""

from __future__ import annotations

import base64
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.batch_results import ResultsFile, ResultsWriter
from airflow_provider_gemini_batch.batch_results.media import MediaExtractor, media_file_name

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3
JPEG = b"\xff\xd8\xff" + bytes(range(200))


class Folder:
    """A sink that keeps what was written, by name."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def write(self, name: str, pieces: Iterator[bytes]) -> str:
        assert name not in self.files, "a file name given twice"
        self.files[name] = b"".join(pieces)
        return f"media/{name}"


def blob(data: bytes, mime: str = "image/png") -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


def line(key: str, *parts: dict[str, Any], candidates: int = 1, spaced: bool = False) -> bytes:
    candidate = {"content": {"parts": list(parts), "role": "model"}, "finishReason": "STOP"}
    data = {"key": key, "response": {"candidates": [candidate] * candidates, "usageMetadata": {"totalTokenCount": 5}}}
    return json.dumps(data, separators=(", ", ": ") if spaced else (",", ":")).encode()


def extract(raw: bytes, **options: Any) -> tuple[dict[str, Any], Folder, MediaExtractor]:
    folder = Folder()
    extractor = MediaExtractor(folder.write, **options)
    return json.loads(extractor.line(raw)), folder, extractor


@pytest.mark.parametrize("spaced", [False, True])
def test_several_images_in_one_result_become_files_named_by_key_and_number(spaced: bool) -> None:
    out, folder, extractor = extract(line("cat", blob(PNG), blob(JPEG, "image/jpeg"), candidates=2, spaced=spaced))
    assert folder.files == {"cat-0.png": PNG, "cat-1.jpg": JPEG, "cat-2.png": PNG, "cat-3.jpg": JPEG}
    parts = out["response"]["candidates"][0]["content"]["parts"]
    assert parts == [
        {"inlineData": {"mimeType": "image/png", "file": "media/cat-0.png"}},
        {"inlineData": {"mimeType": "image/jpeg", "file": "media/cat-1.jpg"}},
    ]
    assert out["media"] == ["media/cat-0.png", "media/cat-1.jpg", "media/cat-2.png", "media/cat-3.jpg"]
    assert (extractor.file_count, extractor.byte_count) == (4, 2 * len(PNG) + 2 * len(JPEG))


def test_text_next_to_an_image_is_kept_and_becomes_the_lines_text() -> None:
    folder = Folder()
    out = _written([line("k1", {"text": "A red square."}, blob(PNG))], MediaExtractor(folder.write))
    assert out[0]["text"] == "A red square."
    assert out[0]["response"]["candidates"][0]["content"]["parts"][0] == {"text": "A red square."}
    assert out[0]["media"] == ["media/k1-0.png"]
    assert folder.files == {"k1-0.png": PNG}


def test_a_failed_request_writes_no_file_and_keeps_its_error() -> None:
    folder = Folder()
    failed = b'{"key":"bad","error":{"code":3,"message":"no","status":"INVALID_ARGUMENT"}}'
    out = _written([failed, line("ok", blob(PNG))], MediaExtractor(folder.write))
    assert out[0]["error"]["code"] == 3
    assert "media" not in out[0]
    assert list(folder.files) == ["ok-0.png"]


def test_keep_inline_media_keeps_the_base64_next_to_the_file() -> None:
    out, folder, _ = extract(line("k", blob(PNG)), keep_inline=True)
    data = out["response"]["candidates"][0]["content"]["parts"][0]["inlineData"]
    assert base64.b64decode(data["data"]) == PNG == folder.files["k-0.png"]
    assert data["file"] == "media/k-0.png"


def test_an_escaped_slash_in_the_base64_still_decodes() -> None:
    raw = line("k", blob(b"\xff" * 300)).replace(b"/", b"\\/")  # a JSON encoder may escape "/"
    out, folder, _ = extract(raw)
    assert folder.files == {"k-0.png": b"\xff" * 300}
    assert out["media"] == ["media/k-0.png"]


def test_a_media_field_of_the_line_is_replaced_not_repeated() -> None:
    raw = line("k", blob(PNG))[:-1] + b',"media":"echoed from the input line"}'
    written = MediaExtractor(Folder().write).line(raw)
    assert written.count(b'"media"') == 1, written
    assert json.loads(written)["media"] == ["media/k-0.png"]


def test_an_inline_data_text_is_not_taken_for_an_image() -> None:
    raw = line("k", {"text": 'say "inlineData": {"data": "AAAA"}'})
    out, folder, _ = extract(raw)
    assert folder.files == {}
    assert "media" not in out


@pytest.mark.parametrize("escaped", [False, True], ids=["fast", "long way"])
def test_every_written_line_ends_in_a_newline(escaped: bool) -> None:
    import io

    from airflow_provider_gemini_batch.models import BatchResult

    raw = line("k", blob(b"\xff" * 30))
    out = io.BytesIO()
    writer = ResultsWriter(out, "generate", media=MediaExtractor(Folder().write))
    writer.write_result(BatchResult.from_json(raw))
    second = raw.replace(b'"k"', b'"i"')
    writer.write_lines([second.replace(b"/", b"\\/") if escaped else second])
    assert writer.render_line(raw.replace(b'"k"', b'"j"')).endswith(b"}\n")
    assert [json.loads(text)["media"] for text in out.getvalue().split(b"\n")[:2]] == [
        ["media/k-0.png"],
        ["media/i-0.png"],
    ]


def test_keys_that_are_not_file_names_are_cleaned_and_stay_distinct() -> None:
    assert media_file_name("a/b", 0, "image/png") != media_file_name("a_b", 0, "image/png")
    assert "/" not in media_file_name("../../etc/passwd", 1, "image/png")
    assert media_file_name("k", 2, "application/x-unknown-thing").endswith("k-2.bin")
    assert media_file_name(None, 0, "audio/wav").startswith("result-0")


def _written(lines: list[bytes], media: MediaExtractor) -> list[dict[str, Any]]:
    import io

    out = io.BytesIO()
    ResultsWriter(out, "generate", media=media).write_lines(lines)
    return [json.loads(written) for written in out.getvalue().splitlines()]


def _results_file(count: int, image: bytes) -> Iterator[bytes]:
    encoded = base64.b64encode(image).decode()
    for number in range(count):
        yield line(f"r{number}", {"text": "here"}, {"inlineData": {"mimeType": "image/png", "data": encoded}}) + b"\n"


def _peak_writing(count: int, tmp_path: Path) -> tuple[int, int]:
    folder = tmp_path / str(count)
    folder.mkdir()

    def to_disk(name: str, pieces: Iterator[bytes]) -> str:
        with open(folder / name, "wb") as out:
            for piece in pieces:
                out.write(piece)
        return str(folder / name)

    media = MediaExtractor(to_disk)
    with open(tmp_path / f"{count}.jsonl", "wb") as out:
        writer = ResultsWriter(out, "generate", media=media)
        tracemalloc.start()
        try:
            ResultsFile("files/batch-x", count).write(
                _results_file(count, b"\x89PNG" + bytes(range(256)) * 200), writer
            )
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert media.file_count == count == writer.succeeded
    return peak, media.byte_count


def test_a_thousand_results_with_images_are_written_in_flat_memory(tmp_path: Path) -> None:
    peak_100, _ = _peak_writing(100, tmp_path)
    peak_1000, written = _peak_writing(1000, tmp_path)
    assert written > 50_000_000  # 1,000 images of 51 KB, 68 MB of base64
    assert peak_1000 < 2_000_000, f"peak {peak_1000} bytes: memory grew with the images"
    assert peak_1000 < peak_100 * 1.5 + 100_000, (peak_100, peak_1000)
