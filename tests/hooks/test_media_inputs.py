"""Media inputs against the emulator: uploaded in parallel, and every fileData reference checked before a job."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook

FOREIGN_URI = "https://generativelanguage.googleapis.com/v1beta/files/someone-elses-file"


@pytest.fixture
def media_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    for index in range(5):
        (folder / f"photo{index}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes([index]) * 100)
    (folder / "invoice.pdf").write_bytes(b"%PDF-1.4 fake")
    (folder / ".hidden.png").write_bytes(b"not me")
    return folder


def part(uri: str, mime_type: str = "image/png") -> dict[str, Any]:
    return {"fileData": {"mimeType": mime_type, "fileUri": uri}}


def record(key: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "request": {"contents": [{"role": "user", "parts": [{"text": "classify"}, *parts]}]}}


def test_a_folder_is_uploaded_with_its_media_types(hook: GeminiBatchHook, media_folder: Path) -> None:
    uploaded = hook.upload_media(media_folder, max_parallel=3)
    assert sorted(Path(item["source"]).name for item in uploaded) == ["invoice.pdf"] + [
        f"photo{i}.png" for i in range(5)
    ]
    by_source = {Path(item["source"]).name: item for item in uploaded}
    assert by_source["invoice.pdf"]["mime_type"] == "application/pdf"
    assert by_source["photo0.png"]["mime_type"] == "image/png"
    for item in uploaded:
        got = hook.get_file(item["name"])
        assert (got.uri, got.mime_type, got.state) == (item["uri"], item["mime_type"], "ACTIVE")
    assert len(json.dumps(uploaded)) < 300 * len(uploaded), "small enough for XCom"


def test_a_file_of_unknown_type_stops_the_upload_before_anything_is_sent(
    hook: GeminiBatchHook, media_folder: Path
) -> None:
    (media_folder / "notes.xyz").write_bytes(b"?")
    with pytest.raises(GeminiBatchInputError, match=r"notes\.xyz.*no known media type"):
        hook.upload_media(media_folder)
    assert list(hook.list_files()) == []


def test_references_to_active_files_pass(hook: GeminiBatchHook, media_folder: Path) -> None:
    uploaded = hook.upload_media(media_folder)
    requests = [record(f"r{i}", part(item["uri"], item["mime_type"])) for i, item in enumerate(uploaded)]
    assert hook.check_media_references(requests=requests) == len(uploaded)


def test_missing_and_foreign_files_are_named_with_their_requests(hook: GeminiBatchHook, media_folder: Path) -> None:
    good = hook.upload_media(media_folder / "photo0.png")[0]
    deleted = hook.upload_media(media_folder / "photo1.png")[0]
    hook.delete_file(deleted["name"])
    requests = [record("a", part(good["uri"])), record("b", part(deleted["uri"])), record("c", part(FOREIGN_URI))]
    with pytest.raises(GeminiBatchInputError) as raised:
        hook.check_media_references(requests=requests)
    message = str(raised.value)
    assert f"{deleted['name']} (requests[1]): not found with this API key (403)" in message
    assert "files/someone-elses-file (requests[2]): not found with this API key (403)" in message
    assert good["name"] not in message


def test_a_file_expiring_before_the_job_could_start_is_refused(
    hook: GeminiBatchHook, media_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded = hook.upload_media(media_folder / "photo0.png")[0]
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(record("text only")) + "\n" + json.dumps(record("img", part(uploaded["uri"]))) + "\n")
    assert hook.check_media_references(input_path=path, margin=timedelta(hours=47)) == 1
    with pytest.raises(GeminiBatchInputError, match=r"\(line 2\): expires at .* within the 49 h"):
        hook.check_media_references(input_path=path, margin=timedelta(hours=49))
    monkeypatch.setenv("AIRFLOW__GEMINI_BATCH__MEDIA_EXPIRY_MARGIN_HOURS", "50")
    with pytest.raises(GeminiBatchInputError, match="within the 50 h"):
        hook.check_media_references(input_path=f"file://{path}")


def test_a_file_still_processing_is_refused(make_hook: Any) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/files/video1")
        return httpx.Response(200, json={"name": "files/video1", "state": "PROCESSING", "mimeType": "video/mp4"})

    hook: GeminiBatchHook = make_hook(handle)
    with pytest.raises(GeminiBatchInputError, match=r"files/video1 \(requests\[0\]\): is PROCESSING, not ACTIVE"):
        hook.check_media_references(requests=[record("v", part("https://x.test/v1beta/files/video1", "video/mp4"))])


def test_delete_files_ignores_the_missing(hook: GeminiBatchHook, media_folder: Path) -> None:
    uploaded = hook.upload_media(media_folder)
    names = [item["name"] for item in uploaded]
    hook.delete_file(names[0])
    assert hook.delete_files(names, max_parallel=2) == len(names) - 1
    assert list(hook.list_files()) == []


class _SlowUploads:
    """Resumable uploads that each take a moment, counting how many are in flight at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = self.most = self.finished = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        command = request.headers.get("x-goog-upload-command", "")
        if command == "start":
            with self.lock:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
                number = self.finished + self.in_flight
            url = str(request.url.copy_with(query=f"upload_id=u{number}".encode()))
            return httpx.Response(200, headers={"x-goog-upload-url": url, "x-goog-upload-chunk-granularity": "4"})
        body = request.read()
        time.sleep(0.2)  # Long enough for every allowed upload to be under way at once.
        with self.lock:
            self.in_flight -= 1
            self.finished += 1
            name = f"files/f{self.finished}"
        file = {"name": name, "uri": f"https://example.test/{name}", "sizeBytes": str(len(body)), "state": "ACTIVE"}
        return httpx.Response(200, headers={"x-goog-upload-status": "final"}, json={"file": file})


@pytest.mark.parametrize("max_parallel", [1, 3])
def test_uploads_run_in_parallel_up_to_max_parallel(make_hook: Any, media_folder: Path, max_parallel: int) -> None:
    server = _SlowUploads()
    uploaded = make_hook(server).upload_media(media_folder, max_parallel=max_parallel)
    assert len(uploaded) == 6
    assert len({file["name"] for file in uploaded}) == 6
    assert server.most == max_parallel
