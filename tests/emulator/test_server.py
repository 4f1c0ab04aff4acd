"""Running the emulator: the context manager and the command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from airflow_provider_gemini_batch.emulator import run_emulator


def test_run_emulator_picks_a_port_and_shuts_down_cleanly(tmp_path: Path) -> None:
    threads_before = set(threading.enumerate())

    with run_emulator(data_dir=tmp_path, pending_seconds=1) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{base_url}/_emulator/config").json()["pending_seconds"] == 1
        # Without an API key, any request is accepted.
        assert httpx.get(f"{base_url}/v1beta/batches").status_code == 200

    assert set(threading.enumerate()) == threads_before
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/_emulator/config")
    assert {path.name for path in tmp_path.iterdir()} == {"files", "uploads", "jobs"}


def test_invalid_settings_are_refused_before_starting() -> None:
    with pytest.raises(ValueError, match="running_seconds"), run_emulator(running_seconds=-1):
        pass
    with pytest.raises(ValueError, match="generation_models"), run_emulator(generation_models=["no such/model"]):
        pass


def test_run_emulator_takes_the_known_models(tmp_path: Path) -> None:
    with run_emulator(data_dir=tmp_path, generation_models=["my-model"], embedding_models=["my-embedder"]) as base_url:
        config = httpx.get(f"{base_url}/_emulator/config").json()
        httpx.post(f"{base_url}/_emulator/config", json={"generation_models": ["other"]})
        httpx.post(f"{base_url}/_emulator/reset")
        after_reset = httpx.get(f"{base_url}/_emulator/config").json()

    assert (config["generation_models"], config["embedding_models"]) == (["models/my-model"], ["models/my-embedder"])
    assert after_reset["generation_models"] == ["models/my-model"]  # a reset restores the start-up list


def test_command_line_takes_the_known_models(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "airflow_provider_gemini_batch.emulator", "--data-dir", str(tmp_path)]
    flags = [
        "--generation-model",
        "my-model",
        "--generation-model",
        "tunedModels/t",
        "--embedding-model",
        "my-embedder",
    ]
    process = subprocess.Popen([*command, *flags], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        base_url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        config = httpx.get(f"{base_url}/_emulator/config").json()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        process.stdout.close()

    assert config["generation_models"] == ["models/my-model", "tunedModels/t"]
    assert config["embedding_models"] == ["models/my-embedder"]


def test_the_job_webhook_secret_is_a_start_up_setting(tmp_path: Path) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    command = [sys.executable, "-m", "airflow_provider_gemini_batch.emulator", "--data-dir", str(tmp_path)]
    process = subprocess.Popen([*command, "--job-webhook-secret", secret], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        base_url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        from_command_line = httpx.get(f"{base_url}/_emulator/config").json()["job_webhook_secret"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        process.stdout.close()
    with run_emulator(data_dir=tmp_path, job_webhook_secret=secret) as base_url:
        from_context_manager = httpx.get(f"{base_url}/_emulator/config").json()["job_webhook_secret"]
    with pytest.raises(ValueError, match="job_webhook_secret"), run_emulator(job_webhook_secret="plain"):
        pass

    assert from_command_line == from_context_manager == secret


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The emulator started from the command line, with a data dir; stopped with SIGTERM after the test."""
    command = [sys.executable, "-m", "airflow_provider_gemini_batch.emulator", "--port", "0", "--api-key", "cli-key"]
    process = subprocess.Popen(
        [*command, "--data-dir", str(tmp_path), "--chunk-granularity", str(8 * 1024 * 1024)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line.startswith("Gemini Batch emulator listening on http://127.0.0.1:"), line
    yield process, line.rsplit(" ", 1)[1]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    process.stdout.close()


def test_command_line_serves_and_uploads_stream_to_disk_with_flat_memory(
    emulator_process: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    process, base_url = emulator_process
    chunk = os.urandom(1024 * 1024) * 8
    chunks = 32  # 256 MiB in 8 MiB chunks
    server = psutil.Process(process.pid)
    headers = {"x-goog-api-key": "cli-key", "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"}
    headers["X-Goog-Upload-Header-Content-Length"] = str(len(chunk) * chunks)
    with httpx.Client(timeout=60) as client:
        upload_url = client.post(f"{base_url}/upload/v1beta/files", headers=headers).headers["x-goog-upload-url"]
        rss_before = server.memory_info().rss
        for index in range(chunks):
            command = "upload, finalize" if index == chunks - 1 else "upload"
            reply = client.post(
                upload_url,
                headers={"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(index * len(chunk))},
                content=chunk,
            )
            assert reply.status_code == 200, reply.text
        rss_after = server.memory_info().rss

    file = reply.json()["file"]
    assert file["sizeBytes"] == str(len(chunk) * chunks)
    assert (tmp_path / "files" / file["name"].removeprefix("files/")).stat().st_size == len(chunk) * chunks
    assert rss_after - rss_before < 64 * 1024 * 1024
