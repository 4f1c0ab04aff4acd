"""Row 3: building and validating batch input: requests/s and peak RSS for N requests.

- ``records_to_jsonl``: N flat records (an int id and the request body, as a database query
  yields them, generated lazily) validated and written as JSONL to a local file;
- ``validate_jsonl``: an existing N-line file validated line by line (as ``upload_jsonl`` does).

Ceilings: the same records through ``json.dumps`` + ``write`` alone, and the same file through
``json.loads`` alone, so the cost of the checks themselves shows. Record generation is included
in both the measured and the ceiling figure.

    .venv/bin/python benchmarks/bench_input.py            # 1M requests
    .venv/bin/python benchmarks/bench_input.py --quick    # 20k requests
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
TARGET_PER_SECOND = 200_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k requests instead of 1M")
    parser.add_argument("--requests", type=int, help="request count (default 1,000,000; quick 20,000)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "COUNT", "PATH"), help=argparse.SUPPRESS)
    return parser


# -- measured children ----------------------------------------------------------------------------


def child(kind: str, count: int, path: str) -> None:
    """Run one of build / build_ceiling / validate / validate_ceiling and report."""
    from airflow_provider_gemini_batch.batch_input import records_to_jsonl, validate_jsonl

    started, cpu_started = time.perf_counter(), time.process_time()
    if kind == "build":
        with open(path, "wb") as out:
            summary = records_to_jsonl(harness.prompt_records(count), out)
        requests = summary.request_count
    elif kind == "build_ceiling":
        requests = 0
        with open(path, "wb") as out:
            for record in harness.prompt_records(count):
                item = {"key": str(record.pop("key")), "request": record}
                out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
                requests += 1
    elif kind == "validate":
        with open(path, "rb") as source:
            requests = validate_jsonl(source, path).request_count
    else:
        requests = 0
        with open(path, "rb") as source:
            for line in source:
                if line.strip():
                    json.loads(line)
                    requests += 1
    harness.report_to_parent(
        {
            "requests": requests,
            "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu_started,
            "peak_rss": harness.peak_rss_bytes(),
        }
    )


# -- the parent ----------------------------------------------------------------------------------


def _run(kind: str, count: int, path: Path, work: Path) -> dict[str, Any]:
    harness.progress(f"Input {kind}: {count:,} requests ...")
    run = harness.run_child(
        harness.python_child(Path(__file__), kind, str(count), str(path)),
        env=harness.airflow_child_env(work / "home", "http://127.0.0.1:9", "unused"),
        cwd=harness.REPO_ROOT,
        timeout=1800,
    )
    report = run.check()
    if report["requests"] != count:
        raise RuntimeError(f"{kind} handled {report['requests']} requests, expected {count}.")
    report["rate"] = count / report["seconds"]
    return report


def measure(*, quick: bool, requests: int | None = None) -> list[harness.Row]:
    """Build and validate N requests; return the table rows."""
    count = requests or (20_000 if quick else 1_000_000)
    with harness.scratch_dir("gemini-bench-input-") as work:
        built = work / "built.jsonl"
        build = _run("build", count, built, work)
        build_ceiling = _run("build_ceiling", count, work / "ceiling.jsonl", work)
        size = built.stat().st_size
        validate = _run("validate", count, built, work)
        validate_ceiling = _run("validate_ceiling", count, built, work)
    label = f"{count:,}"
    return [
        harness.Row(
            "3 input",
            f"records_to_jsonl, {label}",
            "req/s",
            build["rate"],
            ceiling=build_ceiling["rate"],
            target=f">= {TARGET_PER_SECOND:,}",
            met=build["rate"] >= TARGET_PER_SECOND,
            note=f"{size / MiB:.0f} MiB written in {build['seconds']:.1f} s ({build['cpu_seconds']:.1f} CPU s); "
            "ceiling: json.dumps + write only",
        ),
        harness.Row(
            "3 input",
            f"validate_jsonl, {label}",
            "req/s",
            validate["rate"],
            ceiling=validate_ceiling["rate"],
            target=f">= {TARGET_PER_SECOND:,}",
            met=validate["rate"] >= TARGET_PER_SECOND,
            note=f"{validate['seconds']:.1f} s ({validate['cpu_seconds']:.1f} CPU s); ceiling: json.loads only",
        ),
        harness.Row(
            "3 input",
            f"peak RSS records_to_jsonl, {label}",
            "MiB",
            build["peak_rss"] / MiB,
            ceiling=build_ceiling["peak_rss"] / MiB,
        ),
        harness.Row(
            "3 input",
            f"peak RSS validate_jsonl, {label}",
            "MiB",
            validate["peak_rss"] / MiB,
            ceiling=validate_ceiling["peak_rss"] / MiB,
            note="the key set for duplicate detection grows with the request count, by design",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        kind, count, path = args.child
        child(kind, int(count), path)
        return 0
    rows = measure(quick=args.quick, requests=args.requests)
    harness.print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
