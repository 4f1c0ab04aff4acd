"""``media_inputs``: finding file references and judging files, with plain values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.media_inputs import (
    MediaReferences,
    file_name_of_uri,
    file_problem,
    media_mime_type,
    referenced_uris,
    refuse_unusable,
)
from airflow_provider_gemini_batch.models import GeminiFile

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def test_file_names_come_from_uris_of_any_host_or_version() -> None:
    assert file_name_of_uri("https://generativelanguage.googleapis.com/v1beta/files/abc-1") == "files/abc-1"
    assert file_name_of_uri("http://127.0.0.1:8000/v1/files/x9") == "files/x9"
    assert file_name_of_uri("files/x9") == "files/x9"
    assert file_name_of_uri("gs://bucket/cat.png") is None


def test_references_are_found_in_camel_and_snake_case_anywhere_in_a_record() -> None:
    record = {
        "key": "k",
        "request": {
            "systemInstruction": {"parts": [{"file_data": {"file_uri": "files/sys"}}]},
            "contents": [{"parts": [{"text": "x"}, {"fileData": {"fileUri": "files/a", "mimeType": "image/png"}}]}],
        },
    }
    assert sorted(referenced_uris(record)) == ["files/a", "files/sys"]


def test_a_file_referenced_many_times_is_named_with_its_first_places() -> None:
    references = MediaReferences()
    for line in range(1, 8):
        references.add("files/a", f"line {line}")
    references.add("gs://bucket/x.png", "line 9")
    assert references.counts == {"files/a": 7}
    with pytest.raises(GeminiBatchInputError) as raised:
        refuse_unusable(references, {"files/a": "gone"}, "in.jsonl")
    assert "files/a (line 1, line 2, line 3 and 4 more): gone" in str(raised.value)
    assert "line 9: fileUri 'gs://bucket/x.png' names no files/... resource" in str(raised.value)


@pytest.mark.parametrize(
    ("file", "problem"),
    [
        (None, "not found with this API key (403)"),
        (GeminiFile(name="files/a", state="FAILED"), "is FAILED, not ACTIVE"),
        (GeminiFile(name="files/a", state="ACTIVE", expiration_time=NOW + timedelta(hours=3)), "3.0 h from now"),
        (GeminiFile(name="files/a", state="ACTIVE", expiration_time=NOW - timedelta(hours=1)), "0.0 h from now"),
        (GeminiFile(name="files/a", state="ACTIVE", expiration_time=NOW + timedelta(hours=30)), None),
    ],
)
def test_file_problems(file: GeminiFile | None, problem: str | None) -> None:
    found = file_problem("files/a", file, NOW, timedelta(hours=24))
    assert found == problem if problem is None else problem in (found or "")


def test_media_types_come_from_extensions() -> None:
    assert media_mime_type("a/b/Cat.JPG") == "image/jpeg"
    assert media_mime_type("x.webp") == "image/webp"
    assert media_mime_type("doc.pdf") == "application/pdf"
    assert media_mime_type("talk.mp3") == "audio/mpeg"
    with pytest.raises(GeminiBatchInputError, match="no known media type"):
        media_mime_type("archive.zip")
