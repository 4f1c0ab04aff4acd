"""Row 6: how many ``GET /v1beta/batches/{id}`` the emulator serves per second, so it is never the bottleneck.

The emulator runs in its own process with one RUNNING job; a load generator in another process
keeps ``--clients`` requests in flight (one ``httpx.AsyncClient``, one connection per client) for
``--seconds``. Both share the machine's cores, as in the trigger benchmark.

    .venv/bin/python benchmarks/bench_emulator.py            # 100 clients, 10 s
    .venv/bin/python benchmarks/bench_emulator.py --quick    # 100 clients, 1 s
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as harness

#: The trigger benchmark asks for 1,000 polls per second; the emulator must serve well above that.
TRIGGER_DEMAND_PER_SECOND = 1000.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 1-second smoke run")
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients (default 100)")
    parser.add_argument("--seconds", type=float, help="load duration (default 10, quick 1)")
    parser.add_argument(
        "--child", nargs=5, metavar=("URL", "KEY", "BATCH", "CLIENTS", "SECONDS"), help=argparse.SUPPRESS
    )
    return parser


# -- the load generator (child) -------------------------------------------------------------------


async def _load(base_url: str, api_key: str, batch_name: str, clients: int, seconds: float) -> dict[str, Any]:
    import httpx

    url = f"{base_url}/v1beta/{batch_name}"
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(headers={"x-goog-api-key": api_key}, limits=limits, timeout=30) as client:
        await client.get(url)  # connect once before the clock starts
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while (started := time.perf_counter()) < deadline:
                response = await client.get(url)
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "latency_p50": harness.percentile(latencies, 0.5),
        "latency_p99": harness.percentile(latencies, 0.99),
        "cpu_seconds": time.process_time(),
    }


def child(base_url: str, api_key: str, batch_name: str, clients: int, seconds: float) -> None:
    """Run the load and report counts to the parent."""
    harness.report_to_parent(asyncio.run(_load(base_url, api_key, batch_name, clients, seconds)))


# -- the parent ----------------------------------------------------------------------------------


def measure(*, quick: bool, clients: int = 100, seconds: float | None = None) -> list[harness.Row]:
    """Run the load against a fresh emulator; return the table rows."""
    duration = seconds if seconds is not None else (1.0 if quick else 10.0)
    with (
        harness.scratch_dir("gemini-bench-emulator-") as work,
        harness.running_emulator(work / "emulator", extra_args=["--running-seconds", "86400"]) as emulator,
    ):
        [batch] = harness.fixtures.create_jobs(emulator, 1)
        harness.progress(f"Emulator load: {clients} clients for {duration:.0f} s on {batch} ...")
        cpu_before = harness.process_cpu_seconds(emulator.process.pid)
        run = harness.run_child(
            harness.python_child(
                Path(__file__), emulator.base_url, emulator.api_key, batch, str(clients), str(duration)
            ),
            env=harness.airflow_child_env(work / "home", emulator.base_url, emulator.api_key),
            cwd=harness.REPO_ROOT,
            timeout=duration + 120,
        )
        emulator_cpu = harness.process_cpu_seconds(emulator.process.pid) - cpu_before
        report = run.check()
    rate = report["requests"] / report["seconds"]
    cpu_share = emulator_cpu / report["seconds"]
    cpu_per_request = emulator_cpu / max(1, report["requests"])
    capacity = 1 / cpu_per_request if cpu_per_request else float("inf")
    return [
        harness.Row(
            "6 emulator",
            f"GET batch served, {clients} clients",
            "req/s",
            rate,
            note=(
                f"{report['requests']} requests in {report['seconds']:.1f} s, {report['errors']} errors; latency p50 "
                f"{report['latency_p50'] * 1000:.1f} ms, p99 {report['latency_p99'] * 1000:.1f} ms; emulator CPU "
                f"{cpu_share:.0%} of a core, load generator {report['cpu_seconds'] / report['seconds']:.0%} of a core: "
                "the load generator, not the emulator, is what saturates"
            ),
        ),
        harness.Row(
            "6 emulator",
            "GET batch capacity (1 / CPU per request)",
            "req/s",
            capacity,
            target=f">= {TRIGGER_DEMAND_PER_SECOND:,.0f} (the triggers benchmark's demand)",
            met=capacity >= TRIGGER_DEMAND_PER_SECOND,
            note=f"{cpu_per_request * 1e6:.0f} us of emulator CPU per request on its single event-loop thread",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        url, key, batch, clients, seconds = args.child
        child(url, key, batch, int(clients), float(seconds))
        return 0
    rows = measure(quick=args.quick, clients=args.clients, seconds=args.seconds)
    harness.print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
