"""Shared plumbing for the benchmarks, one module per idea; every name a benchmark uses is here.

- ``lifecycle``: scratch directories and the emulator's own process (``Emulator.control`` steers it);
- ``children``: measured children, each a fresh interpreter, and their reports;
- ``readings``: RSS and CPU of a process, percentiles;
- ``inputs``: generated batch input files and records;
- ``fixtures``: jobs and files made through ``GeminiBatchHook`` (in a worker process);
- ``table``: the results table and progress output.

Importing this package loads the standard library only: measured children import it too.
"""

from __future__ import annotations

from _harness import fixtures
from _harness.children import (
    REPORT_MARKER,
    ChildRun,
    airflow_child_env,
    connection_json,
    python_child,
    report_to_parent,
    run_child,
)
from _harness.inputs import JsonlFile, prompt_records, write_batch_jsonl, write_request_lines
from _harness.lifecycle import (
    DEFAULT_API_KEY,
    PYTHON,
    REPO_ROOT,
    Emulator,
    MiB,
    require_free_space,
    running_emulator,
    scratch_dir,
    stop_process,
)
from _harness.readings import (
    address_space_peak_rss_bytes,
    current_rss_bytes,
    peak_rss_bytes,
    percentile,
    process_cpu_seconds,
    process_rss_bytes,
)
from _harness.table import Row, format_table, load_average, machine_description, print_rows, progress, rows_table

__all__ = [
    "DEFAULT_API_KEY",
    "PYTHON",
    "REPORT_MARKER",
    "REPO_ROOT",
    "ChildRun",
    "Emulator",
    "JsonlFile",
    "MiB",
    "Row",
    "address_space_peak_rss_bytes",
    "airflow_child_env",
    "connection_json",
    "current_rss_bytes",
    "fixtures",
    "format_table",
    "load_average",
    "machine_description",
    "peak_rss_bytes",
    "percentile",
    "print_rows",
    "process_cpu_seconds",
    "process_rss_bytes",
    "progress",
    "prompt_records",
    "python_child",
    "report_to_parent",
    "require_free_space",
    "rows_table",
    "run_child",
    "running_emulator",
    "scratch_dir",
    "stop_process",
    "write_batch_jsonl",
    "write_request_lines",
]
