"""Row 2: a results file of N lines downloaded and parsed into per-request records.

The emulator produces the results for real: a JSONL input of N requests is uploaded and a file job
created on it, through ``GeminiBatchHook`` (``_harness.fixtures.results_job``); the first
``batches.get`` that sees it SUCCEEDED writes ``files/batch-{id}`` (the time the emulator takes for
that is reported). Then, each from a fresh interpreter:

- ours: ``GeminiBatchHook.iter_results`` (a typed ``BatchResult`` per line), and
  ``GeminiDownloadResultsOperator`` (``GeminiBatchHook.write_results``: each line decoded for its
  key, text and usage only, spliced, written to a local file);
- SDK: ``client.files.download`` (the whole file as ``bytes``) + ``split`` + ``json.loads`` per line;
- ceiling: the same file read from local disk, ``json.loads`` per line.

Ours runs at N/4 lines too: its peak RSS must not grow with the line count.

This is the regression check of ``airflow_provider_gemini_batch.batch_results``, the results fast
path. Where the time goes, in CPU µs per line of the 1,000,000-line file (385 bytes a line), from
cProfile and from taking pieces out of the loop (``time.process_time``; 2-core VM, Python 3.11,
msgspec 0.23; shared with other work, so ±10 %):

================================  =======  ==========================================================
write_results (the operator)      µs/line
================================  =======  ==========================================================
download (httpx, h11)             0.25     the SDK's download costs the same
split chunks into lines           0.15
typed decode                      0.61     msgspec, into Structs: key, text parts, usageMetadata
splice loop                       0.5      collision checks 0.05, text 0.03, usage encoded 0.12 and
                                           summed 0.10, the join of the block
write                             0.2      one write per downloaded chunk
total                             ~2.0     the SDK: ~5.5 (``json.loads`` alone ~4)
================================  =======  ==========================================================

``iter_results`` spends 0.87 µs decoding the whole line (msgspec, untyped), about 0.5 building and
yielding the ``BatchResult``, plus the download and the split: ~1.9 in all.

Before (pydantic-core and dicts, the operator on ``iter_results``): 5.3 µs a line, 0.7-1x the
SDK. cProfile put about 30 % of it in parsing whole lines into ``BatchResult`` objects, 25 % in ``text``
and ``usage`` read back from the dicts, 17 % in serialising them again and splicing, and 17 % in
the operator's own per-result loop.

    .venv/bin/python benchmarks/bench_results.py            # 250k and 1M lines
    .venv/bin/python benchmarks/bench_results.py --quick    # 2.5k and 10k lines
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as harness

MiB = harness.MiB
FLAT_TOLERANCE = 0.10
KINDS = ("ours", "operator", "sdk", "ceiling")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k lines instead of 1M")
    parser.add_argument("--lines", type=int, help="results lines (default 1,000,000; quick 10,000)")
    parser.add_argument("--child", nargs=5, metavar=("KIND", "URL", "KEY", "NAME", "PATH"), help=argparse.SUPPRESS)
    return parser


# -- measured children ----------------------------------------------------------------------------


def ours_child(batch_name: str) -> dict[str, Any]:
    """Iterate over every result with the hook; keep nothing."""
    from airflow_provider_gemini_batch.hooks import GeminiBatchHook

    hook = GeminiBatchHook()
    batch = hook.get_batch(batch_name)
    records = succeeded = 0
    started = time.perf_counter()
    for result in hook.iter_results(batch):
        records += 1
        succeeded += result.succeeded
    seconds = time.perf_counter() - started
    hook.close()
    return {"records": records, "seconds": seconds, "succeeded": succeeded}


def operator_child(batch_name: str, destination: str) -> dict[str, Any]:
    """Run ``GeminiDownloadResultsOperator.execute``: normalise and write every result."""
    from airflow_provider_gemini_batch.operators import GeminiDownloadResultsOperator

    operator = GeminiDownloadResultsOperator(task_id="download", batch_name=batch_name, destination=destination)
    operator.hook.get_batch(batch_name)  # connection lookup and client set-up, as ours_child does untimed
    started = time.perf_counter()
    manifest = operator.execute(context={})  # type: ignore[arg-type,unused-ignore]
    seconds = time.perf_counter() - started
    Path(manifest["path"]).unlink()
    return {"records": manifest["result_count"], "seconds": seconds, "succeeded": manifest["succeeded_count"]}


def sdk_child(base_url: str, api_key: str, file_name: str) -> dict[str, Any]:
    """google-genai: ``files.download`` returns the whole file; split it and parse each line."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=base_url, api_version="v1beta"))
    started = time.perf_counter()
    data = client.files.download(file=file_name)
    records = succeeded = 0
    for line in data.split(b"\n"):
        if line:
            record = json.loads(line)
            records += 1
            succeeded += "response" in record
    return {"records": records, "seconds": time.perf_counter() - started, "succeeded": succeeded}


def ceiling_child(path: str) -> dict[str, Any]:
    """The same file from local disk, ``json.loads`` per line: parsing without any HTTP."""
    started = time.perf_counter()
    records = succeeded = 0
    with open(path, "rb") as source:
        for line in source:
            if line.strip():
                record = json.loads(line)
                records += 1
                succeeded += "response" in record
    return {"records": records, "seconds": time.perf_counter() - started, "succeeded": succeeded}


def child(kind: str, base_url: str, api_key: str, name: str, path: str) -> None:
    """Run one way of reading the results and report to the parent."""
    if kind == "ours":
        report = ours_child(name)
    elif kind == "operator":
        report = operator_child(name, path)
    elif kind == "sdk":
        report = sdk_child(base_url, api_key, name)
    else:
        report = ceiling_child(path)
    harness.report_to_parent({**report, "peak_rss": harness.peak_rss_bytes()})


# -- the parent ----------------------------------------------------------------------------------


def make_results(emulator: harness.Emulator, work: Path, lines: int) -> dict[str, Any]:
    """Have the emulator run a file job of ``lines`` requests, through the hook; return its names and timings."""
    source = harness.write_request_lines(work / f"requests-{lines}.jsonl", lines, seed=lines)
    job = harness.fixtures.results_job(emulator, source.path, f"results-{lines}")
    source.path.unlink()
    path = work / "emulator" / "files" / job.results_file.removeprefix("files/")
    harness.progress(
        f"Emulator job of {lines:,} requests: create (counts the input) {job.create_seconds:.1f} s, first get "
        f"(writes {path.stat().st_size / MiB:.0f} MiB of results) {job.results_seconds:.1f} s"
    )
    return {
        "batch_name": job.batch_name,
        "results_file": job.results_file,
        "path": path,
        "create_seconds": job.create_seconds,
        "results_seconds": job.results_seconds,
        "size_bytes": path.stat().st_size,
    }


def _run(kind: str, job: dict[str, Any], lines: int, work: Path, emulator: harness.Emulator) -> dict[str, Any]:
    name = job["results_file"] if kind == "sdk" else job["batch_name"]
    path = str(work / "operator-out.jsonl") if kind == "operator" else str(job["path"])
    harness.progress(f"Reading {lines:,} results: {kind} ...")
    run = harness.run_child(
        harness.python_child(Path(__file__), kind, emulator.base_url, emulator.api_key, name, path),
        env=harness.airflow_child_env(work / f"home-{kind}", emulator.base_url, emulator.api_key),
        cwd=harness.REPO_ROOT,
        timeout=1800,
    )
    report = run.check()
    if report["records"] != lines:
        raise RuntimeError(f"{kind} read {report['records']} records, expected {lines}.")
    report["rate"] = report["records"] / report["seconds"]
    return report


def measure(*, quick: bool, lines: int | None = None) -> list[harness.Row]:
    """Produce results files of N and N/4 lines on the emulator and read them every way."""
    big = lines or (10_000 if quick else 1_000_000)
    small = big // 4
    with harness.scratch_dir("gemini-bench-results-") as work:
        harness.require_free_space(work, big * 2048)
        with harness.running_emulator(work / "emulator") as emulator:
            job = make_results(emulator, work, big)
            results = {kind: _run(kind, job, big, work, emulator) for kind in KINDS}
            small_job = make_results(emulator, work, small)
            small_results = {kind: _run(kind, small_job, small, work, emulator) for kind in ("ours", "operator")}
    ours, operator, sdk, ceiling = (results[kind] for kind in KINDS)
    big_label, small_label = f"{big:,}", f"{small:,}"
    ours_rss, sdk_rss = ours["peak_rss"] / MiB, sdk["peak_rss"] / MiB

    def growth(kind: str) -> float:
        return float(results[kind]["peak_rss"] / small_results[kind]["peak_rss"] - 1)

    rows = [
        harness.Row(
            "2 results",
            f"iter_results, {big_label} lines",
            "records/s",
            ours["rate"],
            sdk["rate"],
            ceiling["rate"],
            target=">= 2x SDK",
            met=ours["rate"] >= 2 * sdk["rate"],
            note=f"{job['size_bytes'] / MiB:.0f} MiB results file; seconds: ours {ours['seconds']:.1f}, "
            f"SDK {sdk['seconds']:.1f}, ceiling {ceiling['seconds']:.1f}",
        ),
        harness.Row(
            "2 results",
            f"download operator, {big_label} lines",
            "records/s",
            operator["rate"],
            sdk["rate"],
            ceiling["rate"],
            target=">= 2x SDK",
            met=operator["rate"] >= 2 * sdk["rate"],
            note="write_results: typed decode + splice + write, per result",
        ),
        harness.Row(
            "2 results",
            f"peak RSS iter_results, {big_label} lines",
            "MiB",
            ours_rss,
            sdk_rss,
            ceiling["peak_rss"] / MiB,
            target="<= 1/5 of SDK",
            met=ours_rss <= sdk_rss / 5,
        ),
        harness.Row(
            "2 results",
            f"peak RSS operator, {big_label} lines",
            "MiB",
            operator["peak_rss"] / MiB,
            sdk_rss,
            ceiling["peak_rss"] / MiB,
            target="<= 1/5 of SDK",
            met=operator["peak_rss"] / MiB <= sdk_rss / 5,
        ),
    ]
    for kind, label in (("ours", "iter_results"), ("operator", "operator")):
        rows.append(
            harness.Row(
                "2 results",
                f"peak RSS {label}, {small_label} lines",
                "MiB",
                small_results[kind]["peak_rss"] / MiB,
                target=f"flat: {big_label} within {FLAT_TOLERANCE:.0%} ({growth(kind):+.1%})",
                met=abs(growth(kind)) <= FLAT_TOLERANCE,
                note=f"{small_results[kind]['rate']:,.0f} records/s",
            )
        )
    rows.append(
        harness.Row(
            "2 results",
            f"emulator: make {big_label} results",
            "s",
            job["create_seconds"] + job["results_seconds"],
            note=f"create (counts the input) {job['create_seconds']:.1f} s + first get (writes the results file) "
            f"{job['results_seconds']:.1f} s = {big / (job['create_seconds'] + job['results_seconds']):,.0f} req/s",
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    rows = measure(quick=args.quick, lines=args.lines)
    harness.print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
