"""Row 4: N ``GeminiBatchTrigger``s on one event loop, as one triggerer process runs them.

The emulator runs in its own process with N jobs RUNNING for the whole measurement. A fresh child
interpreter starts N triggers (poll interval 1 s) as tasks on one loop, lets them settle, then
measures for ``--seconds``:

- event-loop lag: a probe task sleeps 10 ms again and again and records the overshoot (p50, p99);
- CPU per 1,000 polls: the child's CPU time over the window / polls made (polls counted by
  wrapping the poll call);
- RSS per trigger: (RSS with N running - RSS before any started) / N.

The comparison trigger does what the official Google provider does: it builds a google-genai
client per poll and calls ``client.aio.batches.get``. The emulator's own CPU over the window is
reported too: on a 2-core machine the emulator and the triggers compete for the same cores.

    .venv/bin/python benchmarks/bench_triggers.py            # 1,000 triggers, 30 s
    .venv/bin/python benchmarks/bench_triggers.py --quick    # 20 triggers, 2 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as harness

MiB = harness.MiB
KiB = 1024
POLL_INTERVAL = 1.0
PROBE_SLEEP = 0.010
LAG_P99_TARGET_MS = 100.0
RSS_PER_TRIGGER_TARGET_KIB = 64.0
CPU_ADVANTAGE_TARGET = 3.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 triggers for 2 s")
    parser.add_argument("--triggers", type=int, help="trigger count (default 1,000; quick 20)")
    parser.add_argument("--seconds", type=float, help="measurement window (default 30; quick 2)")
    parser.add_argument(
        "--child", nargs=5, metavar=("KIND", "BATCHES", "SECONDS", "URL", "PID"), help=argparse.SUPPRESS
    )
    return parser


# -- the measured child ---------------------------------------------------------------------------


_Kind = tuple[Callable[[str], Coroutine[Any, Any, None]], Callable[[], Coroutine[Any, Any, None]]]


class _Polls:
    """Counts polls across every trigger of one kind."""

    count = 0


def _ours(base_url: str, api_key: str) -> _Kind:
    """Our trigger, unchanged; its poll call is wrapped only to count polls."""
    from airflow_provider_gemini_batch.hooks import GeminiBatchHook
    from airflow_provider_gemini_batch.triggers.gemini_batch import GeminiBatchTrigger

    original = GeminiBatchHook.aget_batch

    async def counted(self: GeminiBatchHook, name: str) -> Any:
        _Polls.count += 1
        return await original(self, name)

    GeminiBatchHook.aget_batch = counted  # type: ignore[method-assign]

    async def run(batch_name: str) -> None:
        trigger = GeminiBatchTrigger(batch_name, "gemini_default", POLL_INTERVAL, time.time() + 86400)
        async for _event in trigger.run():
            return

    async def warm_up() -> None:
        hook = GeminiBatchHook()
        # A 404 still loads every module a poll needs.
        with contextlib.suppress(Exception):
            await original(hook, "batches/warm-up")
        await hook.aclose()

    return run, warm_up


def _sdk(base_url: str, api_key: str) -> _Kind:
    """The official provider's approach: a new google-genai client for every poll."""
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=base_url, api_version="v1beta")

    async def poll(batch_name: str) -> str:
        client = genai.Client(api_key=api_key, http_options=options)
        try:
            job = await client.aio.batches.get(name=batch_name)
        finally:
            await client.aio.aclose()
        return str(job.state)

    async def run(batch_name: str) -> None:
        while True:
            _Polls.count += 1
            state = await poll(batch_name)
            if state.endswith(("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")):
                return
            await asyncio.sleep(POLL_INTERVAL)

    async def warm_up() -> None:
        with contextlib.suppress(Exception):
            await poll("batches/warm-up")

    return run, warm_up


async def _measure(kind: str, batches: list[str], seconds: float, base_url: str, emulator_pid: int) -> dict[str, Any]:
    api_key = json.loads(_connection_json())["password"]
    run, warm_up = (_ours if kind == "ours" else _sdk)(base_url, api_key)
    await warm_up()
    gc.collect()
    rss_before = harness.current_rss_bytes()
    lags: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(PROBE_SLEEP)
            lags.append(time.perf_counter() - started - PROBE_SLEEP)

    prober = asyncio.create_task(probe())
    tasks = [asyncio.create_task(run(name)) for name in batches]
    await asyncio.sleep(min(5.0, seconds / 2))  # every trigger has started and polled at least once
    lags.clear()
    polls_before, cpu_before = _Polls.count, time.process_time()
    emulator_cpu_before = harness.process_cpu_seconds(emulator_pid)
    started = time.perf_counter()
    rss_peak_running = 0
    while time.perf_counter() - started < seconds:
        await asyncio.sleep(0.5)
        rss_peak_running = max(rss_peak_running, harness.current_rss_bytes())
    elapsed = time.perf_counter() - started
    polls = _Polls.count - polls_before
    cpu = time.process_time() - cpu_before
    emulator_cpu = harness.process_cpu_seconds(emulator_pid) - emulator_cpu_before
    rss_running = harness.current_rss_bytes()
    finished = sum(task.done() for task in tasks)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(prober, *tasks, return_exceptions=True)
    return {
        "triggers": len(batches),
        "finished_early": finished,
        "seconds": elapsed,
        "polls": polls,
        "cpu_seconds": cpu,
        "emulator_cpu_seconds": emulator_cpu,
        "lag_p50": harness.percentile(lags, 0.5),
        "lag_p99": harness.percentile(lags, 0.99),
        "lag_max": max(lags, default=0.0),
        "lag_samples": len(lags),
        "rss_before": rss_before,
        "rss_running": rss_running,
        "rss_peak_running": rss_peak_running,
    }


def _connection_json() -> str:
    import os

    return os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"]


def child(kind: str, batches_path: str, seconds: float, base_url: str, emulator_pid: int) -> None:
    """Run the triggers of one kind and report to the parent."""
    batches = json.loads(Path(batches_path).read_text())
    report = asyncio.run(_measure(kind, batches, seconds, base_url, emulator_pid))
    harness.report_to_parent({**report, "peak_rss": harness.peak_rss_bytes()})


# -- the parent ----------------------------------------------------------------------------------


def _run(kind: str, batches_path: Path, seconds: float, work: Path, emulator: harness.Emulator) -> dict[str, Any]:
    harness.progress(f"Triggers ({kind}): measuring for {seconds:.0f} s ...")
    command = harness.python_child(
        Path(__file__), kind, str(batches_path), str(seconds), emulator.base_url, str(emulator.process.pid)
    )
    run = harness.run_child(
        command,
        env=harness.airflow_child_env(work / f"home-{kind}", emulator.base_url, emulator.api_key),
        cwd=harness.REPO_ROOT,
        timeout=seconds + 300,
    )
    return run.check()


def measure(*, quick: bool, triggers: int | None = None, seconds: float | None = None) -> list[harness.Row]:
    """Run N of our triggers, then N per-poll-SDK-client triggers; return the table rows."""
    count = triggers or (20 if quick else 1000)
    window = seconds or (2.0 if quick else 30.0)
    with (
        harness.scratch_dir("gemini-bench-triggers-") as work,
        harness.running_emulator(work / "emulator", extra_args=["--running-seconds", "86400"]) as emulator,
    ):
        batches_path = work / "batches.json"
        batches_path.write_text(json.dumps(harness.fixtures.create_jobs(emulator, count)))
        results = {kind: _run(kind, batches_path, window, work, emulator) for kind in ("ours", "sdk")}
    ours, sdk = results["ours"], results["sdk"]

    def per_1000_polls(report: dict[str, Any]) -> float:
        return float(report["cpu_seconds"] / max(1, report["polls"]) * 1000)

    def rss_per_trigger(report: dict[str, Any]) -> float:
        return float((report["rss_running"] - report["rss_before"]) / report["triggers"] / KiB)

    def notes(report: dict[str, Any]) -> str:
        return (
            f"{report['polls']:,} polls in {report['seconds']:.0f} s ({report['polls'] / report['seconds']:,.0f}/s of "
            f"{count / POLL_INTERVAL:,.0f}/s asked); process CPU {report['cpu_seconds'] / report['seconds']:.0%} of a "
            f"core; emulator CPU {report['emulator_cpu_seconds'] / report['seconds']:.0%} of a core; RSS "
            f"{report['rss_before'] / MiB:.0f} -> {report['rss_running'] / MiB:.0f} MiB; lag max "
            f"{report['lag_max'] * 1000:.0f} ms over {report['lag_samples']:,} probes"
        )

    label = f"{count:,} triggers"
    ours_cpu, sdk_cpu = per_1000_polls(ours), per_1000_polls(sdk)
    return [
        harness.Row(
            "4 triggers",
            f"loop lag p50, {label}",
            "ms",
            ours["lag_p50"] * 1000,
            sdk["lag_p50"] * 1000,
            note=f"ours: {notes(ours)}",
        ),
        harness.Row(
            "4 triggers",
            f"loop lag p99, {label}",
            "ms",
            ours["lag_p99"] * 1000,
            sdk["lag_p99"] * 1000,
            target=f"< {LAG_P99_TARGET_MS:.0f} ms",
            met=ours["lag_p99"] * 1000 < LAG_P99_TARGET_MS,
            note=f"SDK per-poll client: {notes(sdk)}",
        ),
        harness.Row(
            "4 triggers",
            "CPU per 1,000 polls",
            "CPU s",
            ours_cpu,
            sdk_cpu,
            target=f">= {CPU_ADVANTAGE_TARGET:.0f}x less than SDK",
            met=sdk_cpu >= CPU_ADVANTAGE_TARGET * ours_cpu,
        ),
        harness.Row(
            "4 triggers",
            "RSS per trigger",
            "KiB",
            rss_per_trigger(ours),
            rss_per_trigger(sdk),
            target=f"< {RSS_PER_TRIGGER_TARGET_KIB:.0f} KiB",
            met=rss_per_trigger(ours) < RSS_PER_TRIGGER_TARGET_KIB,
        ),
        harness.Row(
            "4 triggers",
            "polls served per second",
            "polls/s",
            ours["polls"] / ours["seconds"],
            sdk["polls"] / sdk["seconds"],
            ceiling=count / POLL_INTERVAL,
            note="ceiling: what the triggers ask for (one poll per trigger per interval)",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        kind, batches, seconds, url, pid = args.child
        child(kind, batches, float(seconds), url, int(pid))
        return 0
    rows = measure(quick=args.quick, triggers=args.triggers, seconds=args.seconds)
    harness.print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
