"""``make bench`` in miniature: every benchmark row still runs end to end (small sizes; no figure is judged here)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ROWS = ("1 upload", "2 results", "3 input", "4 triggers", "5 worker slots", "6 emulator", "8 ui", "9 split", "10 media")


@pytest.mark.slow
def test_every_benchmark_row_runs_in_its_quick_form(tmp_path: Path) -> None:
    results = tmp_path / "quick.md"
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "run_all.py"), "--quick", "--results", str(results)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # Shown with -s: about 25 s on an otherwise idle 2-core machine (the rows share its cores).
    print(f"benchmarks/run_all.py --quick: {time.perf_counter() - started:.1f} s")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = results.read_text()
    missing = [row for row in ROWS if f"| {row} " not in table]
    assert not missing, f"rows missing from the table: {missing}\n{table}"
    assert "failed**" not in table


def _harness_readings() -> object:
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from _harness import readings

    return readings


def test_rows_wait_for_the_machine_to_settle_before_they_start() -> None:
    """Each row starts once the cores are mostly idle: a row's start-up (Airflow's imports, a standalone
    shutting down) must not be measured as the next row's figures."""
    readings: Any = _harness_readings()
    # (busy, total) CPU ticks since boot: 90% busy for two samples, then 10%.
    samples = iter([(0, 0), (90, 100), (180, 200), (190, 300), (200, 400)])
    clock = iter(range(100))
    busy, waited = readings.wait_until_quiet(
        busy_below=0.25, timeout=60, sample=lambda: next(samples), sleep=lambda _s: None, now=lambda: next(clock)
    )
    assert busy == pytest.approx(0.10)
    assert waited == 3

    always_busy = iter((tick * 95, tick * 100) for tick in range(1000))
    clock = iter(range(1000))
    busy, waited = readings.wait_until_quiet(
        busy_below=0.25, timeout=5, sample=lambda: next(always_busy), sleep=lambda _s: None, now=lambda: next(clock)
    )
    assert busy == pytest.approx(0.95)
    assert waited >= 5, "gives up after the timeout, reporting how busy the machine still was"


def test_cpu_ticks_are_read_from_proc_stat() -> None:
    readings: Any = _harness_readings()
    busy, total = readings.cpu_ticks()
    assert 0 < busy < total
