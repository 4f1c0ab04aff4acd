"""What a benchmark prints: the rows of the results table, progress lines, and the machine it ran on."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

ROW_HEADERS = (
    "benchmark",
    "metric",
    "unit",
    "ours",
    "SDK",
    "ceiling",
    "ours/SDK",
    "ours/ceiling",
    "target",
    "met",
)


@dataclass(frozen=True)
class Row:
    """One line of the benchmark table.

    :param ours: the provider's figure; ``sdk`` google-genai's, ``ceiling`` the bare best case
        (``None`` where none applies). ``higher_is_better`` decides how the ratios read.
    :param target: the target in words; ``met`` whether it was reached (``None``: no target).
    """

    benchmark: str
    metric: str
    unit: str
    ours: float
    sdk: float | None = None
    ceiling: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""


def print_rows(rows: Sequence[Row]) -> None:
    """Print a module's rows as the table, then each row's note: what a module prints when run alone."""
    print(rows_table(rows))
    for row in rows:
        if row.note:
            print(f"- {row.metric}: {row.note}")


def rows_table(rows: Sequence[Row]) -> str:
    """The benchmark table as a Markdown table (also readable as plain text)."""
    body = [
        [
            row.benchmark,
            row.metric,
            row.unit,
            _figure(row.ours),
            _figure(row.sdk),
            _figure(row.ceiling),
            _ratio(row.ours, row.sdk),
            _ratio(row.ours, row.ceiling),
            row.target,
            {True: "yes", False: "**NO**", None: ""}[row.met],
        ]
        for row in rows
    ]
    cells = [list(ROW_HEADERS), *body]
    widths = [max(len(line[i]) for line in cells) for i in range(len(ROW_HEADERS))]

    def fmt(line: list[str]) -> str:
        return "| " + " | ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([fmt(cells[0]), separator, *(fmt(line) for line in cells[1:])])


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain, aligned text table; numeric cells are right-aligned."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(
            text.rjust(width) if _is_number(text) else text.ljust(width)
            for text, width in zip(row, widths, strict=True)
        ).rstrip()

    return "\n".join([fmt(cells[0]), "  ".join("-" * w for w in widths), *(fmt(row) for row in cells[1:])])


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


def machine_description() -> str:
    """Cores, memory, CPU model, Python and the versions of the libraries that matter."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def package(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.1f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; apache-airflow {package('apache-airflow')}, "
        f"httpx {package('httpx')}, pydantic {package('pydantic')}, google-genai {package('google-genai')}, "
        f"uvicorn {package('uvicorn')}, starlette {package('starlette')}. Loopback only (127.0.0.1). "
        f"Load average when measured: {load_average()}."
    )


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine competes with the benchmark."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if magnitude >= 0.1 or value == 0 else f"{value:.3f}"


def _ratio(numerator: float, denominator: float | None) -> str:
    if denominator is None or denominator == 0:
        return "-"
    return f"{numerator / denominator:.2f}x"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
