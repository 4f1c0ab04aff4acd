"""Shared plumbing for the benchmarks: scratch dirs, JSONL inputs, the emulator process, measured children.

Every benchmark measures the provider in a *fresh* child interpreter, so nothing the benchmark
itself allocated (generated files, the emulator, earlier runs) counts against it. The emulator runs
in its own process for the same reason. A child reports back one JSON line on stdout, marked with
``REPORT_MARKER``; ``run_child`` also reads the child's peak RSS from the kernel when it is reaped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MiB = 1024 * 1024
REPORT_MARKER = "BENCHMARK-REPORT "
EMULATOR_READY = "Gemini Batch emulator listening on "
DEFAULT_API_KEY = "benchmark-key"

# -- scratch space -------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory removed on exit, also when the benchmark is stopped with SIGTERM."""
    # Signal handlers can only be set from the main thread; a row run in a background thread
    # relies on the main thread's handler.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    if main_thread:
        signal.signal(signal.SIGTERM, stop)
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def require_free_space(path: Path, needed_bytes: int) -> None:
    """Stop early with a clear message rather than fill the disk halfway through a run."""
    free = shutil.disk_usage(path).free
    if free < needed_bytes:
        raise SystemExit(
            f"Not enough disk space under {path}: {free / MiB:.0f} MiB free, {needed_bytes / MiB:.0f} MiB needed. "
            "Use a smaller size or point TMPDIR elsewhere."
        )


# -- batch input files -----------------------------------------------------------------------------

_VOCABULARY = (
    "summarize classify translate explain the a of customer review product order invoice shipping delay "
    "refund quality support ticket email report quarterly revenue growth churn risk model data pipeline "
    "airflow schedule batch request response json schema field value error retry timeout latency cost "
    "please answer briefly in one sentence list three reasons why how what which when where describe "
    "compare contrast sentiment positive negative neutral category label extract entities names dates"
)
_WORDS = _VOCABULARY.split()
_EXTRAS = ('"quoted"', "line\nbreak", "tab\there", "café", "naïve", "日本語", "emoji 🙂", "path\\to\\file", "50%")
_LINE_HEAD = '{"key": "request-'
_LINE_MIDDLE = '", "request": {"contents": [{"parts": [{"text": "'
_LINE_TAIL = '"}]}]}}\n'
_BLOCK_LINES = 16_384


@dataclass(frozen=True)
class JsonlFile:
    """A generated batch input file: where it is, its exact size, its SHA-256 and how many requests."""

    path: Path
    size_bytes: int
    sha256: str
    lines: int


def _prompt_pool(seed: int, count: int = 4096) -> list[str]:
    """Prompts of 40 to 1500 characters, JSON-escaped (ASCII only, so characters equal bytes)."""
    rng = random.Random(seed)
    pool = []
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(int(rng.lognormvariate(3.6, 0.8)) + 6)]
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), rng.choice(_EXTRAS))
        text = " ".join(words)[:1500]
        pool.append(json.dumps(text)[1:-1])
    return pool


def _line(number: int, text: str) -> str:
    return f"{_LINE_HEAD}{number}{_LINE_MIDDLE}{text}{_LINE_TAIL}"


def write_batch_jsonl(path: Path, size_bytes: int, *, seed: int = 0) -> JsonlFile:
    """Write a batch input file of exactly ``size_bytes``: one ``{"key", "request"}`` object per line.

    Lines are built a block at a time and written in one call each (about 8 s per GiB, mostly disk
    writes); the last line's prompt is padded so the size comes out exact.
    """
    pool = _prompt_pool(seed)
    longest = max(len(_line(10**12, text)) for text in pool)
    hasher = hashlib.sha256()
    written = 0
    number = 0
    with path.open("wb") as out:

        def emit(text: str) -> None:
            nonlocal written
            data = text.encode("ascii")
            out.write(data)
            hasher.update(data)
            written += len(data)

        # Whole blocks while they surely fit, then single lines, leaving room for the padded last one.
        reserve = 2 * longest
        while True:
            block = "".join([_line(n, pool[(n * 7919) % len(pool)]) for n in range(number, number + _BLOCK_LINES)])
            if written + len(block) > size_bytes - reserve:
                break
            emit(block)
            number += _BLOCK_LINES
        while True:
            line = _line(number, pool[(number * 7919) % len(pool)])
            if written + len(line) > size_bytes - reserve:
                break
            emit(line)
            number += 1
        padding = size_bytes - written - len(_line(number, ""))
        if padding < 1:
            raise ValueError(f"{size_bytes} bytes is too small for a batch input file.")
        filler = (" ".join(_WORDS) + " ") * (padding // 100 + 1)
        emit(_line(number, filler[:padding]))
    return JsonlFile(path=path, size_bytes=written, sha256=hasher.hexdigest(), lines=number + 1)


# -- the emulator ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Emulator:
    """A running emulator process: use ``base_url`` and ``api_key`` for the connection."""

    base_url: str
    api_key: str
    process: subprocess.Popen[str]

    def stored_file_digest(self, file_name: str) -> tuple[str, int]:
        """SHA-256 (hex) and size of a stored file, from the control API (``files/{id}`` or ``{id}``)."""
        import httpx

        file_id = file_name.removeprefix("files/")
        response = httpx.get(f"{self.base_url}/_emulator/files/{file_id}:sha256", timeout=600)
        response.raise_for_status()
        body = response.json()
        return str(body["sha256"]), int(body["sizeBytes"])


def _pump_lines(stream: TextIO, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


@contextlib.contextmanager
def running_emulator(
    data_dir: Path,
    *,
    api_key: str = DEFAULT_API_KEY,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 60.0,
) -> Iterator[Emulator]:
    """Start ``python -m airflow_provider_gemini_batch.emulator`` on a free port; stop it on exit.

    Its stderr goes to ``data_dir/emulator.log``, whose tail is shown if it fails to start.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "emulator.log"
    command = [
        PYTHON,
        "-m",
        "airflow_provider_gemini_batch.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-key",
        api_key,
        "--data-dir",
        str(data_dir),
        *extra_args,
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=_quiet_env()
        )
    try:
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump_lines, args=(process.stdout, lines), daemon=True).start()
        base_url = _await_ready(process, lines, startup_timeout, log_path)
        yield Emulator(base_url=base_url, api_key=api_key, process=process)
    finally:
        stop_process(process)


def _await_ready(process: subprocess.Popen[str], lines: queue.Queue[str], timeout: float, log_path: Path) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        if line.startswith(EMULATOR_READY):
            return line[len(EMULATOR_READY) :].strip()
    tail = log_path.read_text(errors="replace")[-3000:]
    state = f"exited with {process.returncode}" if process.poll() is not None else f"not ready after {timeout:.0f} s"
    raise RuntimeError(f"The emulator {state}. Last of {log_path}:\n{tail}")


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _quiet_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


# -- measured child processes -----------------------------------------------------------------------


def airflow_child_env(
    airflow_home: Path, base_url: str, api_key: str, conn_id: str = "gemini_default"
) -> dict[str, str]:
    """Environment for a child that uses the hook: a throwaway AIRFLOW_HOME and the connection in an env var."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    connection = json.dumps({"conn_type": "gemini", "host": base_url, "password": api_key})
    return {
        **_quiet_env(),
        "AIRFLOW_HOME": str(airflow_home),
        f"AIRFLOW_CONN_{conn_id.upper()}": connection,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


@dataclass(frozen=True)
class ChildRun:
    """How a measured child ended.

    :param peak_rss_bytes: the child's ``ru_maxrss`` as the kernel reported it when the child was reaped.
    :param report: the JSON object the child printed after ``REPORT_MARKER``, or ``None``.
    """

    returncode: int
    seconds: float
    peak_rss_bytes: int
    report: dict[str, Any] | None
    stdout: str
    stderr: str

    def check(self) -> dict[str, Any]:
        """The report, or an error showing the end of the child's stderr."""
        if self.returncode != 0 or self.report is None:
            raise RuntimeError(f"The child failed (exit {self.returncode}):\n{self.stderr[-4000:]}")
        return self.report


def run_child(command: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float) -> ChildRun:
    """Run ``command`` to completion and return its report and its kernel-measured peak RSS.

    The child is reaped with ``os.wait4`` (not ``Popen.wait``) because only that returns the
    resource usage of this one child; it is killed if it outlives ``timeout`` or the benchmark.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=out, stderr=err, text=True)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        finally:
            timer.cancel()
            if process.returncode is None:
                process.kill()
                process.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    report = None
    for line in stdout.splitlines():
        if line.startswith(REPORT_MARKER):
            report = json.loads(line[len(REPORT_MARKER) :])
    return ChildRun(
        returncode=process.returncode,
        seconds=seconds,
        peak_rss_bytes=usage.ru_maxrss * 1024,
        report=report,
        stdout=stdout,
        stderr=stderr,
    )


def report_to_parent(report: Mapping[str, Any]) -> None:
    """Print the child's result where ``run_child`` finds it."""
    print(REPORT_MARKER + json.dumps(dict(report)), flush=True)


def current_rss_bytes() -> int:
    """This process's resident set size now (Linux ``VmRSS``)."""
    return _proc_status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far: ``ru_maxrss``, in KiB on Linux."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def address_space_peak_rss_bytes() -> int:
    """Peak RSS of this address space only (``VmHWM``).

    ``ru_maxrss`` can inherit the parent's peak across ``exec``; ``VmHWM`` cannot, so a gap between
    the two means the parent, not the child, set the number.
    """
    return _proc_status_kib("VmHWM") * 1024


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


# -- output ---------------------------------------------------------------------------------------


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


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


# -- request files of a given line count -----------------------------------------------------------


def write_request_lines(path: Path, count: int, *, seed: int = 0) -> JsonlFile:
    """Write exactly ``count`` batch input lines (the same prompts as ``write_batch_jsonl``)."""
    pool = _prompt_pool(seed)
    hasher = hashlib.sha256()
    written = 0
    with path.open("wb") as out:
        for start in range(0, count, _BLOCK_LINES):
            stop = min(count, start + _BLOCK_LINES)
            data = "".join([_line(n, pool[(n * 7919) % len(pool)]) for n in range(start, stop)]).encode("ascii")
            out.write(data)
            hasher.update(data)
            written += len(data)
    return JsonlFile(path=path, size_bytes=written, sha256=hasher.hexdigest(), lines=count)


def prompt_records(count: int, *, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` flat records as a database query would return them: an int id and the request body."""
    pool = [json.loads(f'"{text}"') for text in _prompt_pool(seed)]
    for number in range(count):
        yield {"key": number, "contents": [{"parts": [{"text": pool[(number * 7919) % len(pool)]}]}]}


# -- emulator set-up without the provider -----------------------------------------------------------


def raw_upload(base_url: str, api_key: str, path: Path, *, mime_type: str = "jsonl") -> str:
    """Upload a file with plain httpx (one start, one final chunk); return its ``files/...`` name.

    Set-up only: the provider's own upload is what the upload benchmark measures.
    """
    import httpx

    size = path.stat().st_size
    headers = {"x-goog-api-key": api_key}
    with httpx.Client(timeout=600) as client:
        start = client.post(
            f"{base_url}/upload/v1beta/files",
            json={"file": {"displayName": path.name, "mimeType": mime_type}},
            headers={
                **headers,
                "x-goog-upload-protocol": "resumable",
                "x-goog-upload-command": "start",
                "x-goog-upload-header-content-length": str(size),
                "x-goog-upload-header-content-type": mime_type,
            },
        )
        start.raise_for_status()
        with path.open("rb") as source:
            final = client.post(
                start.headers["x-goog-upload-url"],
                content=iter(lambda: source.read(MiB), b""),
                headers={
                    "content-length": str(size),
                    "x-goog-upload-command": "upload, finalize",
                    "x-goog-upload-offset": "0",
                },
            )
        final.raise_for_status()
        return str(final.json()["file"]["name"])


def raw_file_size(base_url: str, api_key: str, file_name: str) -> int:
    """A file's ``sizeBytes`` from the Files API."""
    import httpx

    response = httpx.get(f"{base_url}/v1beta/{file_name}", headers={"x-goog-api-key": api_key}, timeout=60)
    return int(response.raise_for_status().json()["sizeBytes"])


def raw_delete_file(base_url: str, api_key: str, file_name: str) -> None:
    """Delete a stored file so its bytes leave the disk."""
    import httpx

    httpx.delete(f"{base_url}/v1beta/{file_name}", headers={"x-goog-api-key": api_key}, timeout=60).raise_for_status()


def raw_create_batch(base_url: str, api_key: str, body: Mapping[str, Any], model: str = "gemini-2.5-flash") -> str:
    """Create a batch job with plain httpx; return its ``batches/...`` name."""
    import httpx

    response = httpx.post(
        f"{base_url}/v1beta/models/{model}:batchGenerateContent",
        json={"batch": body},
        headers={"x-goog-api-key": api_key},
        timeout=3600,
    )
    response.raise_for_status()
    return str(response.json()["name"])


def raw_get_batch(base_url: str, api_key: str, name: str, *, timeout: float = 3600) -> dict[str, Any]:
    """Get a batch job's Operation JSON with plain httpx."""
    import httpx

    response = httpx.get(f"{base_url}/v1beta/{name}", headers={"x-goog-api-key": api_key}, timeout=timeout)
    response.raise_for_status()
    operation: dict[str, Any] = response.json()
    return operation


# -- process figures ------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def process_rss_bytes(pid: int) -> int:
    """A process's resident set size now."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def python_child(script: Path, *args: str) -> list[str]:
    """The command that runs a benchmark module's measured child."""
    return [PYTHON, str(script), "--child", *args]


# -- the results table ----------------------------------------------------------------------------


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

    def as_json(self) -> dict[str, Any]:
        """The row as JSON primitives (children send rows to the parent this way)."""
        return dict(self.__dict__)


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
