"""Splitting one large JSONL input into shards: GB/s and peak RSS, against reading the file and counting its lines.

A 5 GB batch input (``--quick``: 50 MB) of generation requests, each about 1 KB with a unique key, is
generated in a scratch folder and split by ``GeminiBatchHook.split_input`` with its default limits
(shards of 2 GB minus 128 MiB: three shards), every line parsed and validated and every key checked
for uniqueness across the input. The ceiling is the same file read line by line and the lines
counted (``for line in file``), which is what any splitter must at least do; a chunked
``bytes.count(b"\\n")`` over the file, which looks at no line, a copy of the file by the kernel (as the
split writes its shards) and the block check alone (the decode every line needs, nothing written) are
shown in the note. The file is read from the page cache in every run (it was just written, and RAM
holds it). Everything is deleted after.

    .venv/bin/python benchmarks/bench_split.py            # 5 GB
    .venv/bin/python benchmarks/bench_split.py --quick    # 50 MB
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as harness

MiB = harness.MiB
GB = 1_000_000_000
TARGET_RATIO = 0.5
TARGET_RSS_MIB = 200
_TEXT = "Summarise the following support ticket in one sentence and suggest a next step. " * 11


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 MB instead of 5 GB")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    return parser


def generate(path: Path, size: int) -> tuple[int, int]:
    """Write unique-keyed requests of about 1 KB each until ``size`` bytes; return (lines, bytes)."""
    lines = written = 0
    with path.open("wb", buffering=8 * MiB) as out:
        while written < size:
            block = b"".join(
                (
                    f'{{"key":"req-{index:012d}","request":{{"contents":[{{"role":"user","parts":'
                    f'[{{"text":"{_TEXT}#{index}"}}]}}],"generationConfig":{{"temperature":0.2}}}}}}\n'
                ).encode()
                for index in range(lines, lines + 10_000)
            )
            out.write(block)
            written += len(block)
            lines += 10_000
    return lines, written


def child(kind: str, path: str) -> None:
    """Run ``split``, ``lines`` (the ceiling), ``count`` (the chunked count), ``copy`` (the kernel's copy) or
    ``check`` (the block check alone) over ``path``; report."""
    from airflow_provider_gemini_batch.hooks import GeminiBatchHook  # Imported before the clock starts.

    started, cpu_started = time.perf_counter(), time.process_time()
    shards = 0
    if kind == "split":
        paths = GeminiBatchHook().split_input(path, Path(path).parent / "shards")
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        shards = len(paths)
        lines = sum(1 for shard in paths for _ in open(shard, "rb"))  # noqa: SIM115 - checked after the clock stops
    else:
        lines = 0
        with open(path, "rb", buffering=1024 * 1024) as stream:
            if kind == "lines":
                for _line in stream:
                    lines += 1
            elif kind == "count":
                for chunk in iter(lambda: stream.read(8 * MiB), b""):
                    lines += chunk.count(b"\n")
            elif kind == "check":
                from airflow_provider_gemini_batch.block_check import BlockCheck

                check = BlockCheck("generate")
                while block := stream.readlines(4 * MiB):
                    keys = check.keys(block, b"".join(block))
                    lines += len(keys) if keys is not None else 0
            else:
                with open(Path(path).parent / "copy.jsonl", "wb") as copy:
                    size, offset = os.fstat(stream.fileno()).st_size, 0
                    while offset < size:
                        offset += os.copy_file_range(
                            stream.fileno(), copy.fileno(), min(4 * MiB, size - offset), offset
                        )
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    harness.report_to_parent(
        {
            "lines": lines,
            "shards": shards,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "peak_rss": harness.peak_rss_bytes(),
        }
    )


def _run(kind: str, path: Path, work: Path) -> dict[str, Any]:
    harness.progress(f"Split {kind}: {path.stat().st_size / GB:.2f} GB ...")
    run = harness.run_child(
        harness.python_child(Path(__file__), kind, str(path)),
        env=harness.airflow_child_env(work / "home", "http://127.0.0.1:9", "unused"),
        cwd=harness.REPO_ROOT,
        timeout=3600,
    )
    return run.check()


def measure(*, quick: bool) -> list[harness.Row]:
    """Generate the input, split it, read it; return the table rows."""
    size = 50 * 1000**2 if quick else 5 * GB
    with harness.scratch_dir("gemini-bench-split-") as work:
        source = work / "input.jsonl"
        harness.progress(f"Split: writing a {size / GB:.2f} GB input ...")
        lines, size = generate(source, size)
        os.sync()  # The input's own write-back is not charged to what runs next.
        ceilings = [_run("lines", source, work)]
        split = _run("split", source, work)
        os.sync()
        ceilings.append(_run("lines", source, work))
        counted = _run("count", source, work)
        copied = _run("copy", source, work)
        checked = _run("check", source, work)
    if split["lines"] != lines or checked["lines"] != lines or any(ceiling["lines"] != lines for ceiling in ceilings):
        raise RuntimeError(
            f"Expected {lines} lines: split wrote {split['lines']}, the check passed {checked['lines']}, "
            f"ceilings read {ceilings}."
        )
    rate = size / GB / split["seconds"]
    ceiling = max(size / GB / run["seconds"] for run in ceilings)
    label = f"{size / GB:.1f} GB" if not quick else f"{size / 1000**2:.0f} MB"
    rss = split["peak_rss"] / MiB
    return [
        harness.Row(
            "9 split",
            f"split_input throughput, {label}",
            "GB/s",
            rate,
            ceiling=ceiling,
            target=f">= {TARGET_RATIO}x ceiling",
            met=rate >= TARGET_RATIO * ceiling,
            note=f"{lines:,} requests of ~{size // lines} bytes into {split['shards']} shard(s) in "
            f"{split['seconds']:.1f} s ({split['cpu_seconds']:.1f} CPU s); ceiling: the file read line by line "
            f"and counted, best of {[round(run['seconds'], 1) for run in ceilings]} s; a chunked "
            f"count of newlines reads it at {size / GB / counted['seconds']:.2f} GB/s; copying the file with "
            f"the kernel (copy_file_range, as the split writes) runs at {size / GB / copied['seconds']:.2f} GB/s "
            f"({copied['cpu_seconds']:.1f} CPU s in {copied['seconds']:.1f} s); "
            f"checking alone (every block decoded and checked as the split does, nothing written, no key "
            f"ledger) runs at {size / GB / checked['seconds']:.2f} GB/s on one core, of the machine's "
            f"{os.cpu_count()}",
        ),
        harness.Row(
            "9 split",
            f"split_input peak RSS, {label}",
            "MiB",
            rss,
            ceiling=max(run["peak_rss"] for run in ceilings) / MiB,
            target=f"< {TARGET_RSS_MIB} MiB",
            met=rss < TARGET_RSS_MIB,
            note="keys are kept as 8-byte hashes (sharding.KeyLedger): they grow with the request count",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    harness.print_rows(measure(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
