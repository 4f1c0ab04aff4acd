"""Fidelity: the official google-genai SDK runs the documented Batch Mode workflow, unmodified.

Nobody here wrote the SDK, so it working against the emulator is evidence that the emulator
speaks the live service's protocol (shapes, status codes, upload handshake, state names).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types

from airflow_provider_gemini_batch.emulator import EmulatorHandle

from ._support import jsonl, prompt

MODEL = "gemini-2.5-flash"
TERMINAL = {
    types.JobState.JOB_STATE_SUCCEEDED,
    types.JobState.JOB_STATE_FAILED,
    types.JobState.JOB_STATE_CANCELLED,
    types.JobState.JOB_STATE_EXPIRED,
}


def wait_until_done(client: genai.Client, name: str, timeout: float = 10.0) -> types.BatchJob:
    """Poll like the docs do, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.batches.get(name=name)
        if job.state in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"{name} still {job.state}"
        time.sleep(0.05)


def test_file_workflow_upload_create_poll_download(
    client: genai.Client, tmp_path: Path, gemini_emulator: EmulatorHandle
) -> None:
    rows = [{"key": f"request-{index}", "request": prompt(f"question number {index}")} for index in range(3)]
    rows.append({"key": "request-bad", "request": prompt("please [[fail]]")})
    path = tmp_path / "batch.jsonl"
    path.write_bytes(jsonl(rows))

    uploaded = client.files.upload(file=path, config=types.UploadFileConfig(display_name="nightly", mime_type="jsonl"))
    created = client.batches.create(model=MODEL, src=uploaded.name, config={"display_name": "file-job"})
    job = wait_until_done(client, created.name)
    results_file = client.files.get(name=job.dest.file_name)
    lines = [json.loads(line) for line in client.files.download(file=results_file).decode().splitlines()]

    assert (uploaded.display_name, uploaded.mime_type, uploaded.size_bytes) == ("nightly", "jsonl", path.stat().st_size)
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.source == types.FileSource.UPLOADED
    assert gemini_emulator.control.file_sha256(uploaded.name) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert created.state == types.JobState.JOB_STATE_PENDING
    assert (created.display_name, created.model) == ("file-job", f"models/{MODEL}")
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.end_time is not None
    assert job.dest.file_name == f"files/batch-{created.name.removeprefix('batches/')}"
    assert results_file.source == types.FileSource.GENERATED
    by_key = {line["key"]: line for line in lines}
    assert set(by_key) == {"request-0", "request-1", "request-2", "request-bad"}
    reply = types.GenerateContentResponse.model_validate(by_key["request-1"]["response"])
    assert reply.text == "Echo: question number 1"
    assert by_key["request-bad"]["error"]["status"] == "INVALID_ARGUMENT"


def test_inline_job_results(client: genai.Client) -> None:
    requests: list[types.InlinedRequestOrDict] = [
        {
            "contents": [{"parts": [{"text": "Tell me a one-sentence joke."}], "role": "user"}],
            "metadata": {"key": "joke"},
        },
        {"contents": [{"parts": [{"text": "Why is the sky blue?"}], "role": "user"}], "metadata": {"key": "sky"}},
        {"contents": [{"parts": [{"text": "[[fail]] this one"}], "role": "user"}], "metadata": {"key": "bad"}},
    ]

    created = client.batches.create(model=MODEL, src=requests, config={"display_name": "inline-job"})
    job = wait_until_done(client, created.name)

    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    responses = {item.metadata["key"]: item for item in job.dest.inlined_responses}
    assert responses["joke"].response.text == "Echo: Tell me a one-sentence joke."
    assert responses["sky"].response.text == "Echo: Why is the sky blue?"
    assert responses["sky"].response.usage_metadata.prompt_token_count == 5
    assert responses["sky"].response.candidates[0].finish_reason == types.FinishReason.STOP
    assert responses["bad"].response is None
    assert responses["bad"].error.code == 3


def test_list_batches_and_files_page_through_everything(client: genai.Client, tmp_path: Path) -> None:
    names = {
        client.batches.create(model=MODEL, src=[{"contents": prompt(f"job {i}")["contents"]}]).name for i in range(3)
    }
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl([{"key": "a", "request": prompt("a")}]))
    file_names = {client.files.upload(file=path, config={"mime_type": "jsonl"}).name for _ in range(3)}

    listed_jobs = list(client.batches.list(config={"page_size": 2}))
    listed_files = {file.name for file in client.files.list(config={"page_size": 2})}

    assert {job.name for job in listed_jobs} == names
    assert all(job.state is not None and job.create_time is not None for job in listed_jobs)
    assert listed_files == file_names


def test_embeddings_batch(client: genai.Client) -> None:
    source = {
        "inlined_requests": {
            "contents": [{"parts": [{"text": "first document"}]}, {"parts": [{"text": "second one here"}]}],
            "config": {"output_dimensionality": 16, "task_type": "RETRIEVAL_DOCUMENT"},
        }
    }

    with pytest.warns(Warning, match="experimental"):
        created = client.batches.create_embeddings(model="gemini-embedding-001", src=source)
    job = wait_until_done(client, created.name)

    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    first, second = job.dest.inlined_embed_content_responses
    assert len(first.response.embedding.values) == 16
    assert (first.response.token_count, second.response.token_count) == (2, 3)
    assert first.response.embedding.values != second.response.embedding.values


def test_an_unknown_model_is_a_404_client_error(client: genai.Client, gemini_emulator: EmulatorHandle) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.batches.create(model="models/gemini-2.5-flsh", src=[{"contents": prompt("x")["contents"]}])

    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert "models/gemini-2.5-flsh is not found" in caught.value.message
    assert gemini_emulator.control.created_count() == 0


def test_a_model_of_the_wrong_kind_is_a_404_client_error(client: genai.Client, gemini_emulator: EmulatorHandle) -> None:
    embed_source = {"inlined_requests": {"contents": [{"parts": [{"text": "a document"}]}]}}

    with pytest.raises(errors.ClientError) as generating_on_an_embedder:
        client.batches.create(model="gemini-embedding-001", src=[{"contents": prompt("x")["contents"]}])
    with pytest.warns(Warning, match="experimental"), pytest.raises(errors.ClientError) as embedding_on_a_generator:
        client.batches.create_embeddings(model=MODEL, src=embed_source)

    assert (generating_on_an_embedder.value.code, generating_on_an_embedder.value.status) == (404, "NOT_FOUND")
    assert "not supported for batchGenerateContent" in generating_on_an_embedder.value.message
    assert (embedding_on_a_generator.value.code, embedding_on_a_generator.value.status) == (404, "NOT_FOUND")
    assert "not supported for asyncBatchEmbedContent" in embedding_on_a_generator.value.message
    assert gemini_emulator.control.created_count() == 0


def test_cancel_a_running_job(client: genai.Client, gemini_emulator: EmulatorHandle) -> None:
    gemini_emulator.control.configure(running_seconds=60)
    created = client.batches.create(model=MODEL, src=[{"contents": prompt("slow")["contents"]}])
    deadline = time.monotonic() + 5
    while client.batches.get(name=created.name).state != types.JobState.JOB_STATE_RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    client.batches.cancel(name=created.name)
    job = client.batches.get(name=created.name)

    assert job.state == types.JobState.JOB_STATE_CANCELLED
    assert job.dest is None


def test_delete_a_job_and_a_file(client: genai.Client, tmp_path: Path, gemini_emulator: EmulatorHandle) -> None:
    job = client.batches.create(model=MODEL, src=[{"contents": prompt("x")["contents"]}])
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"{}\n")
    file = client.files.upload(file=path, config={"mime_type": "jsonl"})

    client.batches.delete(name=job.name)
    client.files.delete(name=file.name)

    with pytest.raises(errors.ClientError) as missing_job:
        client.batches.get(name=job.name)
    with pytest.raises(errors.ClientError) as missing_file:
        client.files.get(name=file.name)
    assert (missing_job.value.code, missing_job.value.status) == (404, "NOT_FOUND")
    assert (missing_file.value.code, missing_file.value.status) == (403, "PERMISSION_DENIED")
    assert gemini_emulator.control.batches()[0]["deleted"] is True


def test_multi_chunk_upload_arrives_intact(
    client: genai.Client, tmp_path: Path, gemini_emulator: EmulatorHandle
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(hashlib.sha256(b"seed").digest() * (9 * 1024 * 1024 // 32))  # 9 MiB: two 8 MiB-chunk requests

    uploaded = client.files.upload(file=path, config={"mime_type": "application/octet-stream"})

    assert uploaded.size_bytes == path.stat().st_size
    assert gemini_emulator.control.file_sha256(uploaded.name) == hashlib.sha256(path.read_bytes()).hexdigest()
    chunk_posts = [entry for entry in gemini_emulator.control.requests() if entry["path"].startswith("/upload/")]
    assert len(chunk_posts) == 3  # start + two chunks


def test_wrong_api_key_is_a_client_error(gemini_emulator: EmulatorHandle) -> None:
    options = types.HttpOptions(base_url=gemini_emulator.base_url, api_version="v1beta")
    sdk = genai.Client(api_key="not-the-key", http_options=options)

    with pytest.raises(errors.ClientError) as caught:
        sdk.batches.list()
    sdk.close()

    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert "not-the-key" not in str(caught.value)


def test_batches_get_fails_with_503_during_an_outage_and_succeeds_after(
    client: genai.Client, gemini_emulator: EmulatorHandle
) -> None:
    created = client.batches.create(model=MODEL, src=[{"contents": prompt("x")["contents"]}])
    started = time.monotonic()
    gemini_emulator.control.inject_fault("status", status=503, method="GET", path_contains="batches/", seconds=1.0)

    with pytest.raises(errors.ServerError) as caught:
        client.batches.get(name=created.name)
    time.sleep(max(0.0, 1.1 - (time.monotonic() - started)))
    job = client.batches.get(name=created.name)

    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")
    assert job.name == created.name


def test_files_download_ended_early_returns_the_short_content(
    client: genai.Client, tmp_path: Path, gemini_emulator: EmulatorHandle
) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_bytes(jsonl({"key": f"request-{index}", "request": prompt(f"q {index}")} for index in range(10)))
    uploaded = client.files.upload(file=path, config=types.UploadFileConfig(mime_type="jsonl"))
    job = wait_until_done(client, client.batches.create(model=MODEL, src=uploaded.name).name)
    gemini_emulator.control.inject_fault("end_download_early", after_lines=3)

    short = client.files.download(file=job.dest.file_name)
    whole = client.files.download(file=job.dest.file_name)

    # The SDK reports no error: a results file ended early looks complete (the provider must count lines).
    assert short == b"".join(whole.splitlines(keepends=True)[:3])
    assert len(whole.splitlines()) == 10
