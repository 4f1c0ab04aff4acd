"""Media inputs through the operators: upload, reference checks before any job, cleanup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.operators import (
    GeminiDeleteMediaOperator,
    GeminiSubmitBatchOperator,
    GeminiUploadFileOperator,
    GeminiUploadMediaOperator,
)
from tests.airflow_flow import run_task

FOREIGN_URI = "https://generativelanguage.googleapis.com/v1beta/files/another-projects-file"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("cat.jpg", "dog.png", "scan.pdf"):
        (folder / name).write_bytes(name.encode() * 20)
    return folder


def classify(key: str, file: dict[str, str]) -> dict[str, Any]:
    parts = [{"text": "Cat, dog or document?"}, {"fileData": {"fileUri": file["uri"], "mimeType": file["mime_type"]}}]
    return {"key": key, "request": {"contents": [{"role": "user", "parts": parts}]}}


def upload(photos: Path) -> list[dict[str, str]]:
    uploaded, _ = run_task(GeminiUploadMediaOperator(task_id="upload", source=str(photos), max_parallel=2))
    return uploaded  # type: ignore[no-any-return]


def test_upload_returns_names_uris_and_types_and_cleanup_deletes_them(
    gemini_connection: EmulatorHandle, photos: Path
) -> None:
    uploaded = upload(photos)
    assert [item["mime_type"] for item in uploaded] == ["image/jpeg", "image/png", "application/pdf"]
    assert all(item["name"].startswith("files/") and item["uri"].endswith(item["name"]) for item in uploaded)
    deleted, _ = run_task(GeminiDeleteMediaOperator(task_id="cleanup", files=json.dumps(uploaded)))
    assert deleted == 3
    assert list(GeminiBatchHook().list_files()) == []
    assert run_task(GeminiDeleteMediaOperator(task_id="again", files=uploaded))[0] == 0, "gone: passed over"
    assert run_task(GeminiDeleteMediaOperator(task_id="none", files=None))[0] == 0


def test_a_job_on_usable_media_is_created(gemini_connection: EmulatorHandle, photos: Path) -> None:
    uploaded = upload(photos)
    requests = [classify(f"r{i}", file) for i, file in enumerate(uploaded)]
    name, _ = run_task(
        GeminiSubmitBatchOperator(task_id="submit", model="gemini-2.5-flash", requests=requests, poll_interval=0.05)
    )
    assert name.startswith("batches/")
    assert gemini_connection.control.created_count() == 1


@pytest.mark.parametrize("how", ["requests", "input_path", "upload_file"])
def test_missing_and_foreign_media_fail_before_anything_is_uploaded_or_created(
    gemini_connection: EmulatorHandle, photos: Path, tmp_path: Path, how: str
) -> None:
    uploaded = upload(photos)
    hook = GeminiBatchHook()
    hook.delete_file(uploaded[1]["name"])
    foreign = {"uri": FOREIGN_URI, "mime_type": "image/png"}
    requests = [classify("ok", uploaded[0]), classify("gone", uploaded[1]), classify("theirs", foreign)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in requests))
    files_before = {file.name for file in hook.list_files()}
    operator: Any
    if how == "upload_file":
        operator = GeminiUploadFileOperator(task_id="up", source=str(path))
    else:
        given = {"requests": requests} if how == "requests" else {"input_path": str(path)}
        operator = GeminiSubmitBatchOperator(task_id="submit", model="gemini-2.5-flash", **given)

    with pytest.raises(GeminiBatchInputError) as raised:
        run_task(operator)

    where = ("requests[1]", "requests[2]") if how == "requests" else ("line 2", "line 3")
    assert f"{uploaded[1]['name']} ({where[0]}): not found" in str(raised.value)
    assert f"files/another-projects-file ({where[1]}): not found" in str(raised.value)
    assert gemini_connection.control.created_count() == 0
    assert {file.name for file in hook.list_files()} == files_before, "nothing uploaded"


def test_expiring_media_fail_the_submit_before_the_job(
    gemini_connection: EmulatorHandle, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded = upload(photos)
    monkeypatch.setenv("AIRFLOW__GEMINI_BATCH__MEDIA_EXPIRY_MARGIN_HOURS", "48.5")  # a fresh file has 48 h
    operator = GeminiSubmitBatchOperator(
        task_id="submit", model="gemini-2.5-flash", requests=[classify("a", uploaded[0])]
    )
    with pytest.raises(GeminiBatchInputError, match=r"\(requests\[0\]\): expires at .* within the 48.5 h"):
        run_task(operator)
    assert gemini_connection.control.created_count() == 0
