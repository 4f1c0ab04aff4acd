"""GeminiDownloadResultsOperator with ``media_destination``: images as files, counted in the manifest."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator
from tests.airflow_flow import run_task

IMAGES = {"generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}


def image_batch(hook: GeminiBatchHook, prefix: str = "") -> str:
    records = [
        {"key": f"{prefix}img{i}", "request": {"contents": [{"parts": [{"text": f"picture {i}"}]}], **IMAGES}}
        for i in range(3)
    ]
    name = hook.create_batch("gemini-2.5-flash-image", requests=records).name
    hook.get_batch(name)  # The emulator finishes the job on this get.
    return name


@pytest.mark.parametrize("keep", [False, True])
def test_images_go_to_the_media_folder_and_the_manifest_counts_them(
    gemini_connection: EmulatorHandle, tmp_path: Path, keep: bool
) -> None:
    name = image_batch(GeminiBatchHook())
    operator = GeminiDownloadResultsOperator(
        task_id="d",
        batch_name=name,
        destination=str(tmp_path / "out.jsonl"),
        media_destination=str(tmp_path / "png"),
        keep_inline_media=keep,
    )
    manifest, _ = run_task(operator)

    files = sorted((tmp_path / "png").iterdir())
    assert [path.name for path in files] == ["img0-0.png", "img1-0.png", "img2-0.png"]
    assert manifest["media_count"] == 3
    assert manifest["media_bytes"] == sum(path.stat().st_size for path in files)
    line = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    blob = line["response"]["candidates"][0]["content"]["parts"][1]["inlineData"]
    assert ("data" in blob) is keep
    if keep:
        assert base64.b64decode(blob["data"]) == Path(blob["file"]).read_bytes()


def test_media_destination_is_templated(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    assert "media_destination" in GeminiDownloadResultsOperator.template_fields


def test_the_jobs_of_a_sharded_input_write_their_media_a_folder_per_job_counted_per_shard(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    """A mapped submit's list of jobs: every job's images are written, each job's into a folder named by
    its id (two jobs may share keys), and the manifest counts them."""
    hook = GeminiBatchHook()
    names = [image_batch(hook, prefix) for prefix in ("a", "b")]
    operator = GeminiDownloadResultsOperator(
        task_id="d", batch_name=names, destination=str(tmp_path / "results"), media_destination=str(tmp_path / "png")
    )
    manifest, _ = run_task(operator)

    files = sorted((tmp_path / "png").rglob("*.png"))
    assert [path.relative_to(tmp_path / "png").as_posix() for path in files] == sorted(
        f"{name.rsplit('/', 1)[-1]}/{prefix}img{i}-0.png"
        for name, prefix in zip(names, "ab", strict=True)
        for i in range(3)
    )
    assert manifest["complete"] is True
    assert manifest["media_count"] == 6
    assert manifest["media_bytes"] == sum(path.stat().st_size for path in files)
    assert [(shard["media_count"], shard["media_bytes"] > 0) for shard in manifest["shards"]] == [(3, True), (3, True)]
    written = json.loads((tmp_path / "results" / "manifest.json").read_text())
    assert written["media_count"] == 6
    for shard in manifest["shards"]:
        for line in map(json.loads, Path(shard["path"]).read_text().splitlines()):
            assert Path(line["media"][0]).is_file()  # Each line points at its image.


def test_jobs_sharing_keys_keep_each_others_images(gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
    """Not shards of one split: the same keys in two jobs. Neither job's images replace the other's."""
    hook = GeminiBatchHook()
    names = [image_batch(hook), image_batch(hook)]
    operator = GeminiDownloadResultsOperator(
        task_id="d", batch_name=names, destination=str(tmp_path / "results"), media_destination=str(tmp_path / "png")
    )
    manifest, _ = run_task(operator)

    assert manifest["media_count"] == len(list((tmp_path / "png").rglob("*.png"))) == 6
    pointed = [
        json.loads(text)["media"][0]
        for shard in manifest["shards"]
        for text in Path(shard["path"]).read_text().splitlines()
    ]
    assert len(set(pointed)) == 6, "every line points at an image of its own job"
