"""``make bench`` in miniature: every benchmark row still runs end to end (small sizes; no figure is judged here)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

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
