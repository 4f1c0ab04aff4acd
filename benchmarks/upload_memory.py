"""Peak memory of ``GeminiBatchHook.upload_file`` for a large JSONL file: it must not grow with the file.

Generates a batch input file, starts the emulator in its own process, and uploads the file from a
fresh child interpreter that reports its own peak RSS and its RSS right after importing the hook.
The emulator's SHA-256 of the stored bytes is checked against the source.

    .venv/bin/python benchmarks/upload_memory.py                    # 1 GiB, target: peak RSS < 150 MiB
    .venv/bin/python benchmarks/upload_memory.py --size-mib 64      # a quick smoke run
    .venv/bin/python benchmarks/upload_memory.py --sizes 1024,2048  # flat in file size: within 10 %
    .venv/bin/python benchmarks/upload_memory.py --size-mib 256 --tracemalloc  # where the memory goes

Exits 1 when a run misses the target, a digest differs, or (with several sizes) memory is not flat.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as harness

MiB = harness.MiB
FLAT_TOLERANCE = 0.10


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--sizes", help="comma-separated sizes in MiB, e.g. 1024,2048; overrides --size-mib")
    parser.add_argument("--target-mib", type=float, default=150.0, help="peak RSS target in MiB (default 150)")
    parser.add_argument("--chunk-mib", type=int, help="upload_file(chunk_bytes=...) in MiB (default: the hook's)")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace Python allocations in the child (slower)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per upload (default 1800)")
    parser.add_argument("--child", metavar="PATH", help=argparse.SUPPRESS)
    return parser


# -- the measured child ---------------------------------------------------------------------------


def child(source: str, chunk_mib: int | None, trace: bool) -> None:
    """Upload ``source`` with the hook and report time and memory to the parent."""
    from airflow_provider_gemini_batch.hooks import GeminiBatchHook

    after_imports = harness.current_rss_bytes()
    hook = GeminiBatchHook()
    tracer = _PeakTracer() if trace else None
    collections_before = [generation["collections"] for generation in gc.get_stats()]
    started = time.perf_counter()
    uploaded = hook.upload_file(source, chunk_bytes=chunk_mib * MiB) if chunk_mib else hook.upload_file(source)
    seconds = time.perf_counter() - started
    collections = [
        generation["collections"] - before
        for generation, before in zip(gc.get_stats(), collections_before, strict=True)
    ]
    hook.close()
    report: dict[str, Any] = {
        "file_name": uploaded.name,
        "size_bytes": uploaded.size_bytes,
        "seconds": seconds,
        "rss_after_imports": after_imports,
        "rss_after_upload": harness.current_rss_bytes(),
        "peak_rss": harness.peak_rss_bytes(),
        "peak_rss_vmhwm": harness.address_space_peak_rss_bytes(),
        "gc_collections": collections,
    }
    if tracer is not None:
        report.update(tracer.finish())
    harness.report_to_parent(report)


class _PeakTracer:
    """Trace allocations and keep a snapshot taken near the traced peak, to show what was live then."""

    def __init__(self) -> None:
        tracemalloc.start(12)
        self._best = 0
        self._snapshot: tracemalloc.Snapshot | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            current, _ = tracemalloc.get_traced_memory()
            if current > self._best + MiB:
                self._best = current
                self._snapshot = tracemalloc.take_snapshot()

    def finish(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        top: list[str] = []
        if self._snapshot is not None:
            for stat in self._snapshot.statistics("traceback")[:6]:
                # Newest frame first, stopping at this script: the allocation site and its callers.
                frames = []
                for frame in reversed(stat.traceback):
                    if frame.filename == __file__:
                        break
                    frames.append(f"{frame.filename.removeprefix(str(harness.REPO_ROOT) + '/')}:{frame.lineno}")
                top.append(f"{stat.size / MiB:7.1f} MiB in {stat.count} blocks at " + " <- ".join(frames[:5]))
        return {"traced_peak": peak, "traced_snapshot_total": self._best, "traced_top": top}


# -- the parent ----------------------------------------------------------------------------------


def measure(size_mib: int, work: Path, emulator: harness.Emulator, args: argparse.Namespace) -> dict[str, Any]:
    """Generate, upload in a child, verify; return one result row's values."""
    source = work / f"batch-{size_mib}mib.jsonl"
    started = time.perf_counter()
    generated = harness.write_batch_jsonl(source, size_mib * MiB, seed=size_mib)
    harness.progress(
        f"Generated {source.name}: {generated.lines} requests, {generated.size_bytes} bytes "
        f"in {time.perf_counter() - started:.1f} s; uploading from a fresh interpreter ..."
    )
    command = [harness.PYTHON, str(Path(__file__).resolve()), "--child", str(source)]
    if args.chunk_mib:
        command += ["--chunk-mib", str(args.chunk_mib)]
    if args.tracemalloc:
        command.append("--tracemalloc")
    env = harness.airflow_child_env(work / f"airflow-home-{size_mib}", emulator.base_url, emulator.api_key)
    run = harness.run_child(command, env=env, cwd=harness.REPO_ROOT, timeout=args.timeout)
    try:
        report = run.check()
    finally:
        source.unlink(missing_ok=True)
    stored_sha256 = emulator.control.file_sha256(report["file_name"])
    intact = stored_sha256 == generated.sha256 and report["size_bytes"] == generated.size_bytes
    return {
        **report,
        "size_mib": size_mib,
        "kernel_peak_rss": run.peak_rss_bytes,
        "intact": intact,
        "passed": intact and report["peak_rss"] < args.target_mib * MiB,
    }


def _row(result: dict[str, Any], target_mib: float) -> list[object]:
    peak = result["peak_rss"] / MiB
    after_imports = result["rss_after_imports"] / MiB
    return [
        result["size_mib"],
        f"{result['seconds']:.2f}",
        f"{result['size_bytes'] / MiB / result['seconds']:.1f}",
        f"{peak:.1f}",
        f"{after_imports:.1f}",
        f"{peak - after_imports:.1f}",
        "match" if result["intact"] else "MISMATCH",
        f"{'PASS' if result['passed'] else 'FAIL'} (< {target_mib:g})",
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        child(args.child, args.chunk_mib, args.tracemalloc)
        return 0
    sizes = [int(size) for size in args.sizes.split(",")] if args.sizes else [args.size_mib]
    results = []
    with harness.scratch_dir("gemini-upload-memory-") as work:
        # The source file and the emulator's stored copy exist at the same time; sources go one at a time.
        harness.require_free_space(work, 2 * max(sizes) * MiB + sum(sizes) * MiB + 256 * MiB)
        with harness.running_emulator(work / "emulator-data") as emulator:
            harness.progress(f"Emulator at {emulator.base_url}")
            for size_mib in sizes:
                results.append(measure(size_mib, work, emulator, args))
    headers = [
        "size MiB",
        "seconds",
        "MiB/s",
        "peak RSS MiB",
        "RSS after imports MiB",
        "upload's own MiB",
        "sha256",
        "target peak RSS MiB",
    ]
    print(harness.format_table(headers, [_row(result, args.target_mib) for result in results]))
    for result in results:
        _print_details(result)
    ok = all(result["passed"] for result in results)
    if len(results) > 1:
        peaks = [result["peak_rss"] for result in results]
        spread = max(peaks) / min(peaks) - 1
        flat = spread <= FLAT_TOLERANCE
        print(f"Peak RSS spread across sizes: {spread:.1%} ({'PASS' if flat else 'FAIL'}, limit {FLAT_TOLERANCE:.0%})")
        ok = ok and flat
    return 0 if ok else 1


def _print_details(result: dict[str, Any]) -> None:
    print(
        f"{result['size_mib']} MiB: ru_maxrss {result['peak_rss'] / MiB:.1f} MiB, "
        f"VmHWM {result['peak_rss_vmhwm'] / MiB:.1f} MiB, "
        f"kernel (wait4) {result['kernel_peak_rss'] / MiB:.1f} MiB, RSS after upload "
        f"{result['rss_after_upload'] / MiB:.1f} MiB, GC runs per generation during the upload "
        f"{result['gc_collections']}, stored as {result['file_name']}"
    )
    if "traced_peak" in result:
        print(
            f"  tracemalloc: traced peak {result['traced_peak'] / MiB:.1f} MiB; live at the sampled peak "
            f"({result['traced_snapshot_total'] / MiB:.1f} MiB):"
        )
        for line in result["traced_top"]:
            print("   ", line)


if __name__ == "__main__":
    sys.exit(main())
