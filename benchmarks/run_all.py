"""Every benchmark, one table: ``make bench`` runs this.

Each row's module (``bench_*.py``) also runs alone. Every measured figure comes from a fresh child
interpreter; the emulator always runs in a process of its own. The worker-slot row mostly waits
for its batch to run, so it runs in the background while the other rows run one after another.
A quick run is a smoke test (``make test`` runs it) whose figures are not judged: all its rows
run at once, but for the webhooks row, which starts ``airflow standalone`` (30-75 s alone) and runs
in a quick run only when named (``--quick --only webhooks``: one job per mode).

    .venv/bin/python benchmarks/run_all.py                      # the full run (~15 min), writes RESULTS.md
    .venv/bin/python benchmarks/run_all.py --quick              # a smoke run of every row but webhooks (< 30 s)
    .venv/bin/python benchmarks/run_all.py --only upload,input  # some rows only
    .venv/bin/python benchmarks/run_all.py --batch-minutes 1    # a shorter batch for the worker-slot row
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as harness
import bench_emulator
import bench_input
import bench_media
import bench_results
import bench_split
import bench_triggers
import bench_ui
import bench_upload
import bench_webhooks
import bench_worker_slots

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
#: A row starts once the cores were less busy than this over a second, or after QUIET_TIMEOUT seconds.
QUIET_BELOW = 0.25
QUIET_TIMEOUT = 60.0
ROW_NAMES = ("upload", "results", "input", "triggers", "worker_slots", "emulator", "webhooks", "ui", "split", "media")
#: Rows a quick run of every row leaves out: each takes longer than the whole smoke run may.
NOT_IN_QUICK = ("webhooks",)

FOOTNOTES = """\
How each row is measured:

1. **upload**: a generated JSONL file is uploaded to the emulator (its own process) from a fresh
   interpreter per client; throughput = file bytes / wall time of the upload call (median of 3 runs
   per client in rotating order, `os.sync()` before each), peak RSS = the child's `ru_maxrss`.
   Ours: `GeminiBatchHook.upload_file`; SDK: `genai.Client(...).files.upload`. Twice: first with the
   emulator's `discard_uploads` on (it keeps the resumable protocol, offsets and granularity checked,
   but neither hashes nor writes the bytes; the uploaded size is checked), where the ceiling is one
   streaming httpx POST of the same bytes to `/_emulator/discard`; then with the bytes stored (SHA-256
   and a disk write, which bound every client here; the stored SHA-256 is checked against the
   source), where the ceiling is bare httpx through the same upload endpoint in one streamed chunk.
   Ours runs again on a file twice as large to show memory does not grow with the file.
2. **results**: the emulator runs a real file job of N requests and writes the results file;
   ours = `iter_results` (a `BatchResult` per line) and `GeminiBatchHook.write_results`, what the
   download operator runs (per line: only the key, text parts and token usage decoded, spliced onto
   the service's own bytes; counts and usage totals kept for the manifest);
   SDK = `files.download` (bytes) + `split` + `json.loads`;
   ceiling = the same file read from local disk + `json.loads` per line.
3. **input**: N flat records generated lazily go through `records_to_jsonl` into a local file, and
   the written file goes through `validate_jsonl`; ceilings are `json.dumps` + write and `json.loads`
   alone on the same data (record generation is included in both figures).
4. **triggers**: N triggers run as tasks on one event loop in a fresh interpreter (poll interval 1 s)
   against N jobs RUNNING in the emulator; measured over a window after they all started. Lag: a
   probe task sleeps 10 ms and records the overshoot. CPU per 1,000 polls = process CPU time over the
   window / polls made (counted by wrapping the poll call). RSS per trigger = (RSS with N running -
   RSS before any started) / N. SDK = a trigger that builds a google-genai client per poll and calls
   `client.aio.batches.get` (the official Google provider's approach). The emulator and the triggers
   share the machine's 2 cores; the emulator's CPU share is in the notes.
5. **worker slots**: `GeminiSubmitBatchOperator` in `dag.test()` (throwaway AIRFLOW_HOME, SQLite)
   against a batch that stays RUNNING for the stated time, deferrable and sync side by side.
   `dag.test()` runs the trigger inline, so the slot time is what a real worker would hold: the
   wall time of `execute()` (until it defers, or the job ends in sync mode) plus `execute_complete()`,
   timed by a subclass in the DAG file. The TI's recorded duration (which in `dag.test()` includes
   the inline deferral and dag.test's own start-up) is in the notes.
6. **emulator**: `GET /v1beta/batches/{id}` with 100 concurrent clients from one httpx.AsyncClient
   in a separate process for 10 s; the emulator must serve well above the 1,000 polls/s that bench_triggers.py asks.
7. **webhooks**: one real `airflow standalone` on loopback (LocalExecutor, SQLite, the provider's
   plugin from its entry point) and two emulators, one per mode, so each mode's API calls are counted
   apart. Webhook: a DAG submits a job with `webhook_uris` = the api-server's
   `/gemini-batch/webhooks/gemini_default` and `wait_for_completion=False`; the emulator delivers the
   signed completion (its job webhook secret is the connection's `webhook_secret`); a DAG scheduled on
   `gemini_batch_completed("gemini_default")`, with no watcher, starts. Poll: the deferrable submit
   operator waits at the default poll interval (30 s), then a downstream task starts. Latency = the
   downstream task instance's `start_date` - the job's `endTime` (as the emulator reports it). Four
   rounds, each one job per mode, both RUNNING for 20, 27.5, 35 or 42.5 s, so the poll's phase against
   the job's end varies; the rounds overlap. API calls per job = the emulator's request counts / jobs,
   counted when every end point is reached; status polls are the `GET batches/{id}` among them.
   Downloading results (the same in both modes) is not counted.
8. **ui**: the "Gemini Batches" list page of a connection with 100 jobs in the emulator (its own
   process; a third RUNNING, the rest SUCCEEDED or FAILED). A fresh interpreter builds Airflow's own
   api-server app (`create_app`: auth manager, the provider's plugin, a SQLite metadata DB), serves it
   with uvicorn on 127.0.0.1 and loads the page over HTTP with a viewer's token, 10 times after a
   warm-up, one after another; each figure is the whole response, from the request to its last byte
   (the token and DAG-read check, listing the jobs through the hook, the metadata DB lookups of their
   creators and tokens, rendering). The target is judged on the slowest load.
9. **split**: a 5 GB JSONL input of ~1 KB generation requests with unique keys, generated in a scratch
   folder, goes through `GeminiBatchHook.split_input` with its default limits (shards of 2 GB minus
   128 MiB), every line parsed, validated and its key checked across the input (a block of lines at a
   time: `block_check.py`), in a fresh interpreter
   (throughput = input bytes / wall time, peak RSS = the child's `ru_maxrss`). Ceiling: the same file
   read line by line and the lines counted (best of a run before and one after the split); a chunked
   newline count is in the note. The file is in the page cache throughout; everything is deleted after.
10. **media**: a results file of 10,000 image-model results (a text part and one 100 KB image as
   `inlineData` base64 each, 1.3 GB), generated in a scratch folder, goes in 8 MiB chunks through what
   `GeminiBatchHook.write_results(media_destination=...)` runs on a download's bytes
   (`batch_results.ResultsFile` into a `ResultsWriter` with a `MediaExtractor`): each image decoded into
   a file of its own, each line rewritten to point at it, in a fresh interpreter (images/s = images /
   wall time; peak RSS = the child's `ru_maxrss`). The HTTP download is left out (the results row measures it).
   Ceiling: the same chunks, each line's base64 found and decoded with `binascii.a2b_base64`, nothing
   written (best of a run before and one after). The file is in the page cache; everything is deleted after.

Ratios read "ours / other": for rates higher is better, for RSS, CPU and lag lower is better.
The machine is shared: other work runs on the same 2 cores (see the load average in the header),
so wall-clock rates carry noise; CPU-time figures are in the notes where they matter. Each row waits
for the cores to be quiet before it starts (the header says how long), so one row's start-up or
shutdown, or the worker-slot row's Airflow start-up in the background, is not measured as the next
row's figures.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every row")
    parser.add_argument("--batch-minutes", type=float, default=10.0, help="worker-slot row's batch length (default 10)")
    parser.add_argument("--only", help=f"comma-separated rows to run, of {', '.join(ROW_NAMES)}")
    parser.add_argument(
        "--results",
        type=Path,
        help=f"write the table here (default: {RESULTS_PATH.name} for a full run of every row, nothing otherwise)",
    )
    return parser


def run(
    *, quick: bool, batch_minutes: float, only: set[str] | None = None
) -> tuple[list[harness.Row], dict[str, str], dict[str, float]]:
    """Run the selected rows; return the rows in order, the failures by row name, and how long each row
    waited for the machine to settle before it started."""
    selected = [
        name for name in ROW_NAMES if (name in only if only is not None else not (quick and name in NOT_IN_QUICK))
    ]
    measures: dict[str, Callable[[], list[harness.Row]]] = {
        "upload": lambda: bench_upload.measure(quick=quick),
        "results": lambda: bench_results.measure(quick=quick),
        "input": lambda: bench_input.measure(quick=quick),
        "triggers": lambda: bench_triggers.measure(quick=quick),
        "worker_slots": lambda: bench_worker_slots.measure(quick=quick, batch_minutes=batch_minutes),
        "emulator": lambda: bench_emulator.measure(quick=quick),
        "webhooks": lambda: bench_webhooks.measure(quick=quick),
        "ui": lambda: bench_ui.measure(quick=quick),
        "split": lambda: bench_split.measure(quick=quick),
        "media": lambda: bench_media.measure(quick=quick),
    }
    results: dict[str, list[harness.Row]] = {}
    failures: dict[str, str] = {}

    def attempt(name: str) -> None:
        started = time.perf_counter()
        try:
            results[name] = measures[name]()
        except Exception as error:  # one broken row must not lose the others
            failures[name] = f"{type(error).__name__}: {str(error)[-1500:]}"
        harness.progress(f"== {name}: {time.perf_counter() - started:.0f} s")

    # Rows run one at a time, so they do not compete for the cores, but for the worker-slot row,
    # which mostly waits; a quick run's figures are not judged, so its rows all run at once. The
    # webhooks row also mostly waits, but its latency is the scheduler's, which shares the cores.
    harness.fixtures.start_worker()
    at_once = selected if quick else [name for name in selected if name == "worker_slots"]
    at_once = sorted(at_once, key=lambda name: name != "worker_slots")  # the longest row starts first
    threads = [threading.Thread(target=attempt, args=(name,), name=name) for name in at_once]
    for thread in threads:
        thread.start()
    waits: dict[str, float] = {}
    for name in selected:
        if name not in at_once:
            # What ran before (a row's children exiting, the worker-slot row's Airflow start-up, a
            # standalone shutting down) is not this row's to pay for: start once the cores are quiet.
            busy, waits[name] = harness.wait_until_quiet(busy_below=QUIET_BELOW, timeout=QUIET_TIMEOUT)
            if waits[name] >= QUIET_TIMEOUT:
                harness.progress(f"{name}: the cores are still {busy:.0%} busy after {QUIET_TIMEOUT:.0f} s; starting")
            attempt(name)
    for thread in threads:
        thread.join()
    rows = [row for name in selected for row in results.get(name, [])]
    return rows, failures, waits


def report(
    rows: list[harness.Row],
    failures: dict[str, str],
    *,
    quick: bool,
    seconds: float,
    skipped: tuple[str, ...] = (),
    waits: dict[str, float] | None = None,
) -> str:
    """The header, the table, the notes (``skipped``: rows left out of a quick run) and the method, as Markdown."""
    met = [row for row in rows if row.met is not None]
    lines = [
        "# Benchmarks" + (" (quick smoke run: small sizes, every row at once)" if quick else ""),
        "",
        f"Machine: {harness.machine_description()}",
        "",
        f"Run: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {seconds / 60:.1f} min; "
        f"targets met: {sum(bool(row.met) for row in met)} of {len(met)}.",
        *(
            [
                "",
                f"Each row started once the cores were under {QUIET_BELOW:.0%} busy for a second (at most "
                f"{QUIET_TIMEOUT:.0f} s); waited: "
                + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in waits.items())
                + ".",
            ]
            if waits
            else []
        ),
        "",
        harness.rows_table(rows),
        "",
        "Notes:",
        "",
        *(f"- {row.benchmark} / {row.metric}: {row.note}" for row in rows if row.note),
        *(f"- **{name} failed**: {message}" for name, message in failures.items()),
        *(
            f"- {name}: not in a quick run of every row (it starts airflow standalone); "
            f"`--quick --only {name}` runs it small."
            for name in skipped
        ),
        "",
        FOOTNOTES,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    if only is not None and not only <= set(ROW_NAMES):
        raise SystemExit(f"Unknown rows {sorted(only - set(ROW_NAMES))}: use {', '.join(ROW_NAMES)}.")
    started = time.perf_counter()
    rows, failures, waits = run(quick=args.quick, batch_minutes=args.batch_minutes, only=only)
    skipped = NOT_IN_QUICK if args.quick and only is None else ()
    text = report(rows, failures, quick=args.quick, seconds=time.perf_counter() - started, skipped=skipped, waits=waits)
    print(text)
    destination = args.results or (RESULTS_PATH if not args.quick and only is None else None)
    if destination is not None:
        destination.write_text(text)
        harness.progress(f"Wrote {destination}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
