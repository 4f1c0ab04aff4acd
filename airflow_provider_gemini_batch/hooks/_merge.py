"""Write the results of a sharded input's jobs as one results set: a file per shard and one manifest.

With a media destination, each job's images are written into a folder of their own in it, named by the
job's id (``<media_destination>/<job id>/<key>-<n>.<ext>``): jobs that are not the shards of one split
may share keys, and must not replace each other's files. The manifest counts them per shard.

Each shard's results are written as ``GeminiBatchHook.write_results`` writes one job's (all or
nothing, checked against the job's request count); a shard whose job did not succeed, or whose
results stay incomplete, writes nothing and its requests count as missing. With the shards' input
files, every input key is accounted for across the shards: the keys without a result are listed in
the manifest, and ``outcome.MissingResultsPolicy`` decides whether that fails the task.

The keys of the whole input are held in memory while merging (input keys and result keys, some
100 bytes a key): a million keys take about 100 MB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pydantic_core

from airflow_provider_gemini_batch.exceptions import GeminiBatchError, GeminiBatchIncompleteResults
from airflow_provider_gemini_batch.hooks._sources import as_storage_path, open_destination
from airflow_provider_gemini_batch.outcome import MissingResultsPolicy
from airflow_provider_gemini_batch.pricing import cost_line, run_cost, summed_cost, tokens_by_kind

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.hooks.gemini_batch import GeminiBatchHook

MANIFEST_NAME = "manifest.json"
#: Missing keys the task's XCom repeats; the manifest file lists them all.
KEYS_IN_XCOM = 100


def _keys(location: Any) -> Iterator[str]:
    """The ``key`` of every non-blank line of a JSONL file (local path, URI or ``ObjectStoragePath``)."""
    storage_path = as_storage_path(location)
    with storage_path.open("rb") if storage_path is not None else open(location, "rb") as stream:
        for line in iter(stream.readline, b""):  # Airflow 3.0's object-storage files cannot be iterated.
            if line.strip():
                key = pydantic_core.from_json(line).get("key")
                if key is not None:
                    yield str(key)


def _join(destination: Any, name: str) -> Any:
    storage_path = as_storage_path(destination)
    if storage_path is not None:
        return storage_path / name
    return f"{str(destination).rstrip('/')}/{name}"


def _job_folder(media_destination: Any, job_id: str) -> Any:
    """Where one job's media go: a folder per job, named by its id, so that jobs sharing keys (not the
    shards of one split) cannot replace each other's files; ``None`` when media stay inline."""
    if media_destination is None:
        return None
    return _join(media_destination, re.sub(r"[^A-Za-z0-9_-]", "_", job_id) or "job")


class ResultsSetWriter:
    """Merge the results of several jobs into ``destination`` (see ``GeminiBatchHook.write_results_set``)."""

    def __init__(self, hook: GeminiBatchHook, policy: MissingResultsPolicy) -> None:
        self.hook = hook
        self.log = hook.log
        self.policy = policy

    def write(
        self,
        batch_names: Sequence[str | None],
        destination: Any,
        *,
        input_paths: Sequence[Any] | None,
        skip_if_complete: bool,
        media_destination: Any = None,
        keep_inline_media: bool = False,
    ) -> dict[str, Any]:
        if str(destination).lower().endswith((".jsonl", ".jsonl.gz")):
            raise GeminiBatchError(
                f"destination {str(destination)!r} is a file, and several jobs' results go to a folder "
                "(a file per shard, and manifest.json): pass a folder."
            )
        expected_keys: set[str] | None = None
        if input_paths is not None:
            expected_keys = {key for path in input_paths for key in _keys(path)}
        found: set[str] = set()
        duplicates = 0
        shards: list[dict[str, Any]] = []
        for index, name in enumerate(batch_names):
            shard: dict[str, Any] = {"index": index, "batch_name": name}
            shards.append(shard)
            if not name:
                shard["error"] = "no job: the shard's submit task pushed no batch name"
                continue
            try:
                batch = self.hook.get_batch(name)
                summary = self.hook.write_results(
                    batch,
                    destination,
                    skip_if_complete=skip_if_complete,
                    media_destination=_job_folder(media_destination, batch.id),
                    keep_inline_media=keep_inline_media,
                )
            except GeminiBatchError as exc:
                self.log.warning("Shard %d (%s) has no results: %s", index, name, exc)
                shard["error"] = str(exc)
                continue
            shard.update(
                path=summary.path,
                result_count=summary.result_count,
                expected_count=summary.expected_count,
                succeeded_count=summary.succeeded_count,
                failed_count=summary.failed_count,
                usage=summary.usage,
                media_count=summary.media_count,
                media_bytes=summary.media_bytes,
                model=batch.model,
                **run_cost(batch.model, summary.usage),
            )
            for key in _keys(summary.path):
                if key in found:
                    duplicates += 1
                found.add(key)
        return self._manifest(shards, destination, expected_keys, found, duplicates)

    def _manifest(
        self,
        shards: list[dict[str, Any]],
        destination: Any,
        expected_keys: set[str] | None,
        found: set[str],
        duplicates: int,
    ) -> dict[str, Any]:
        written = [shard for shard in shards if "error" not in shard]
        result_count = sum(shard["result_count"] for shard in written)
        if expected_keys is not None:
            missing_keys = sorted(expected_keys - found)
            expected = len(expected_keys)
            missing = len(missing_keys)
            unexpected = len(found - expected_keys)
        else:
            missing_keys = []
            known = [shard.get("expected_count") for shard in written]
            expected = sum(count or 0 for count in known)
            missing = sum(max((shard.get("expected_count") or 0) - shard["result_count"], 0) for shard in written)
            unexpected = 0  # A shard without results has no count to add: only input_paths can say.
        usage: dict[str, int] = {}
        for shard in written:
            for counter, value in shard["usage"].items():
                usage[counter] = usage.get(counter, 0) + value
        failed_shards = [shard["batch_name"] for shard in shards if "error" in shard]
        manifest = {
            "destination": str(destination),
            "shard_count": len(shards),
            "shards_without_results": len(failed_shards),
            "result_count": result_count,
            "expected_count": expected,
            "succeeded_count": sum(shard["succeeded_count"] for shard in written),
            "failed_count": sum(shard["failed_count"] for shard in written),
            "missing_count": missing,
            "duplicate_count": duplicates,
            "unexpected_count": unexpected,
            "missing_keys": missing_keys,
            "complete": not missing and not failed_shards,
            "media_count": sum(shard["media_count"] for shard in written),
            "media_bytes": sum(shard["media_bytes"] for shard in written),
            "usage": usage,
            "tokens": tokens_by_kind(usage),
            "cost": summed_cost([shard["cost"] for shard in written]),
            "shards": shards,
        }
        models = sorted({str(shard["model"]) for shard in written})
        why = next((shard["cost_error"] for shard in written if "cost_error" in shard), None)
        self.log.info("%s", cost_line(f"{len(shards)} shard(s)", ", ".join(models), usage, manifest["cost"], why))
        manifest_path = _join(destination, MANIFEST_NAME)
        manifest["manifest_path"] = str(manifest_path)
        with open_destination(manifest_path) as out:
            out.write(json.dumps(manifest, indent=1, sort_keys=True).encode())
        violation = self.policy.violation(missing, expected)
        if violation is None and failed_shards and expected_keys is None:
            violation = (
                f"{len(failed_shards)} shard(s) have no results and, without input_paths, their keys are unknown"
            )
        if violation:
            without = f"; no results from {', '.join(str(name) for name in failed_shards)}" if failed_shards else ""
            raise GeminiBatchIncompleteResults(
                f"set of {len(shards)} shards ({violation}{without})", expected, expected - missing, missing_keys
            )
        self.log.info(
            "Merged %d shard(s) into %s: %d results of %d expected, %d missing, %d duplicate",
            len(shards),
            destination,
            result_count,
            expected,
            missing,
            duplicates,
        )
        if len(missing_keys) > KEYS_IN_XCOM:
            manifest["missing_keys"] = missing_keys[:KEYS_IN_XCOM]
            manifest["missing_keys_truncated"] = True
        return manifest
