"""The Files API: resumable upload, get, list, delete, download."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorControl

from ._support import base_url, send_chunk, start_upload, upload


def test_upload_start_returns_an_absolute_upload_url_and_granularity(api: httpx.Client, version: str) -> None:
    response = start_upload(api, version, 10)

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["x-goog-upload-status"] == "active"
    assert response.headers["x-goog-upload-chunk-granularity"] == "8388608"
    url = httpx.URL(response.headers["x-goog-upload-url"])
    assert str(url).startswith(f"{base_url(api)}/upload/{version}/files?")
    assert url.params["upload_id"]


def test_upload_in_chunks_then_the_file_resource_has_the_service_shape(
    api: httpx.Client, version: str, control: EmulatorControl
) -> None:
    control.configure(chunk_granularity=4)
    data = b"0123456789"
    upload_url = start_upload(api, version, len(data)).headers["x-goog-upload-url"]

    first = send_chunk(upload_url, data[:8], 0, final=False)
    final = send_chunk(upload_url, data[8:], 8, final=True)

    assert (first.status_code, first.headers["x-goog-upload-status"], first.content) == (200, "active", b"")
    assert final.headers["x-goog-upload-status"] == "final"
    file = final.json()["file"]
    file_id = file["name"].removeprefix("files/")
    assert file == {
        "name": f"files/{file_id}",
        "displayName": "input",
        "mimeType": "jsonl",
        "sizeBytes": "10",
        "createTime": file["createTime"],
        "updateTime": file["createTime"],
        "expirationTime": file["expirationTime"],
        "sha256Hash": base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode(),
        "uri": f"{base_url(api)}/{version}/files/{file_id}",
        "state": "ACTIVE",
        "source": "UPLOADED",
    }
    assert len(file["createTime"].split(".")[1]) == len("123456789Z")
    assert control.file_sha256(file["name"]) == hashlib.sha256(data).hexdigest()


def test_upload_accepts_snake_case_start_body(api: httpx.Client, version: str) -> None:
    start = start_upload(api, version, 2, {"file": {"display_name": "snake", "mime_type": "text/plain"}})
    file = send_chunk(start.headers["x-goog-upload-url"], b"hi", 0, final=True).json()["file"]

    assert (file["displayName"], file["mimeType"]) == ("snake", "text/plain")


def test_upload_query_reports_bytes_received(api: httpx.Client, version: str, control: EmulatorControl) -> None:
    control.configure(chunk_granularity=4)
    upload_url = start_upload(api, version, 12).headers["x-goog-upload-url"]
    send_chunk(upload_url, b"abcd", 0, final=False)

    query = httpx.post(upload_url, headers={"X-Goog-Upload-Command": "query"})

    assert query.status_code == 200
    assert query.headers["x-goog-upload-status"] == "active"
    assert query.headers["x-goog-upload-size-received"] == "4"


@pytest.mark.parametrize(
    ("offset", "chunk", "final", "message"),
    [
        ("3", b"abcd", False, "does not match"),
        ("0", b"abc", False, "not a multiple of the chunk granularity"),
        ("0", b"abcdefghijklmnop", True, "exceeds the 12 bytes"),
        ("0", b"abcd", True, "announced 12"),
    ],
)
def test_upload_rejects_bad_chunks_and_keeps_what_was_received(
    api: httpx.Client, control: EmulatorControl, offset: str, chunk: bytes, final: bool, message: str
) -> None:
    control.configure(chunk_granularity=4)
    upload_url = start_upload(api, "v1beta", 12).headers["x-goog-upload-url"]
    command = "upload, finalize" if final else "upload"

    response = httpx.post(
        upload_url, headers={"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": offset}, content=chunk
    )

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert message in response.json()["error"]["message"]
    query = httpx.post(upload_url, headers={"X-Goog-Upload-Command": "query"})
    assert query.headers["x-goog-upload-size-received"] == "0"


def test_upload_of_unknown_session_is_not_found(api: httpx.Client) -> None:
    response = httpx.post(
        f"{base_url(api)}/upload/v1beta/files?upload_id=nope", headers={"X-Goog-Upload-Command": "query"}
    )

    assert response.status_code == 404


def test_get_list_and_delete_files(api: httpx.Client, version: str) -> None:
    assert api.get(f"/{version}/files").json() == {}
    names = [upload(api, version, b"x", display_name=f"f{index}")["name"] for index in range(3)]

    first_page = api.get(f"/{version}/files", params={"pageSize": 2}).json()
    second_page = api.get(
        f"/{version}/files", params={"page_size": 2, "page_token": first_page["nextPageToken"]}
    ).json()
    fetched = api.get(f"/{version}/{names[0]}")
    deleted = api.delete(f"/{version}/{names[0]}")

    listed = [file["name"] for file in first_page["files"] + second_page["files"]]
    assert sorted(listed) == sorted(names)
    assert "nextPageToken" not in second_page
    assert (fetched.status_code, fetched.json()["displayName"]) == (200, "f0")
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert api.get(f"/{version}/{names[0]}").status_code == 403


def test_missing_file_is_permission_denied_like_the_service(api: httpx.Client, version: str) -> None:
    response = api.get(f"/{version}/files/doesnotexist")

    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": 403,
            "message": "You do not have permission to access the File doesnotexist or it may not exist.",
            "status": "PERMISSION_DENIED",
        }
    }


def test_bad_page_token_is_invalid_argument(api: httpx.Client) -> None:
    assert api.get("/v1beta/files", params={"pageToken": "garbage"}).status_code == 400


@pytest.mark.parametrize("prefix", ["/download", ""])
def test_download_streams_the_bytes_on_both_paths(api: httpx.Client, version: str, prefix: str) -> None:
    data = bytes(range(256)) * 4
    name = upload(api, version, data)["name"]

    response = api.get(f"{prefix}/{version}/{name}:download", params={"alt": "media"})

    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))


def test_download_resumes_with_a_range_header(api: httpx.Client, version: str) -> None:
    data = b"0123456789"
    name = upload(api, version, data)["name"]

    partial = api.get(f"/{version}/{name}:download?alt=media", headers={"Range": "bytes=4-"})
    bounded = api.get(f"/{version}/{name}:download?alt=media", headers={"Range": "bytes=2-3"})
    beyond = api.get(f"/{version}/{name}:download?alt=media", headers={"Range": "bytes=10-"})

    assert (partial.status_code, partial.content) == (206, b"456789")
    assert partial.headers["content-range"] == "bytes 4-9/10"
    assert (bounded.status_code, bounded.content) == (206, b"23")
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == "bytes */10"


def test_discard_uploads_keeps_the_protocol_but_no_bytes(
    api: httpx.Client, version: str, control: EmulatorControl
) -> None:
    control.configure(discard_uploads=True, chunk_granularity=4)
    upload_url = start_upload(api, version, 10).headers["x-goog-upload-url"]
    assert send_chunk(upload_url, b"01234567", 0, final=False).headers["x-goog-upload-status"] == "active"
    mismatched = send_chunk(upload_url, b"89", 4, final=True)  # offsets are still checked
    assert mismatched.status_code == 400
    file = send_chunk(upload_url, b"89", 8, final=True).json()["file"]

    assert file["sizeBytes"] == "10"
    assert "sha256Hash" not in file, "no digest is claimed for bytes that were not kept"
    body = {"batch": {"inputConfig": {"fileName": file["name"]}}}
    created = api.post(f"/{version}/models/gemini-2.5-flash:batchGenerateContent", json=body)
    assert created.status_code == 400
    assert "discard_uploads" in created.json()["error"]["message"]
    downloaded = api.get(f"/download/{version}/{file['name']}:download", params={"alt": "media"})
    assert downloaded.status_code == 400
    with pytest.raises(httpx.HTTPStatusError):
        control.file_sha256(file["name"])  # no digest of bytes it does not have
