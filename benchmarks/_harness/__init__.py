"""Shared plumbing for the benchmarks, one module per idea; every name a benchmark uses is here.

- ``lifecycle``: scratch directories and the emulator's own process (``Emulator.control`` steers it);
- ``children``: measured children, each a fresh interpreter, and their reports;
- ``readings``: RSS and CPU of a process, how busy the machine is (``wait_until_quiet``), percentiles;
- ``inputs``: generated batch input files and records;
- ``fixtures``: jobs and files made through ``GeminiBatchHook`` (in a worker process);
- ``table``: the results table and progress output.

Importing this package loads the standard library only: measured children import it too.
"""

from __future__ import annotations

from _harness import fixtures
from _harness.children import airflow_child_env, python_child, report_to_parent, run_child
from _harness.inputs import JsonlFile, prompt_records, write_batch_jsonl, write_request_lines
from _harness.lifecycle import PYTHON, REPO_ROOT, Emulator, MiB, require_free_space, running_emulator, scratch_dir
from _harness.readings import (
    address_space_peak_rss_bytes,
    cpu_ticks,
    current_rss_bytes,
    peak_rss_bytes,
    percentile,
    process_cpu_seconds,
    wait_until_quiet,
)
from _harness.table import Row, format_table, machine_description, print_rows, progress, rows_table

__all__ = [
    "PYTHON",
    "REPO_ROOT",
    "Emulator",
    "JsonlFile",
    "MiB",
    "Row",
    "address_space_peak_rss_bytes",
    "airflow_child_env",
    "cpu_ticks",
    "current_rss_bytes",
    "fixtures",
    "format_table",
    "machine_description",
    "peak_rss_bytes",
    "percentile",
    "print_rows",
    "process_cpu_seconds",
    "progress",
    "prompt_records",
    "python_child",
    "report_to_parent",
    "require_free_space",
    "rows_table",
    "run_child",
    "running_emulator",
    "scratch_dir",
    "wait_until_quiet",
    "write_batch_jsonl",
    "write_request_lines",
]
