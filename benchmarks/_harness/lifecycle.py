"""What a benchmark run holds while it runs: scratch directories and the emulator's own process."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.emulator import EmulatorControl

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
MiB = 1024 * 1024
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


# -- processes ------------------------------------------------------------------------------------


def quiet_env() -> dict[str, str]:
    """This process's environment, unbuffered and without bytecode writes, for a child process."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the emulator ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Emulator:
    """A running emulator process: ``base_url`` and ``api_key`` for a connection, ``control`` to steer it."""

    base_url: str
    api_key: str
    process: subprocess.Popen[str]
    control: EmulatorControl


@contextlib.contextmanager
def running_emulator(
    data_dir: Path,
    *,
    api_key: str = DEFAULT_API_KEY,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 60.0,
) -> Iterator[Emulator]:
    """Start ``python -m airflow_provider_gemini_batch.emulator`` on a free port; stop it on exit.

    It runs in a process of its own, so its CPU and memory never count against what is measured.
    Its stderr goes to ``data_dir/emulator.log``, whose tail is shown if it fails to start.
    """
    # Imported here: measured children import this package, and must not load httpx for it.
    from airflow_provider_gemini_batch.emulator import EmulatorControl

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
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=quiet_env()
        )
    try:
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump_lines, args=(process.stdout, lines), daemon=True).start()
        base_url = _await_ready(process, lines, startup_timeout, log_path)
        with EmulatorControl(base_url) as control:
            yield Emulator(base_url=base_url, api_key=api_key, process=process, control=control)
    finally:
        stop_process(process)


def _pump_lines(stream: TextIO, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


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
