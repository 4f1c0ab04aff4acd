"""Fixtures built through the provider's public surface: ``GeminiBatchHook`` for the Gemini API.

The parent of the measured children never imports Airflow (``children`` says why), so the hook
runs in one worker process, started on first use and shared by every row of a run. Each call
names the emulator it is for and builds a hook on a connection to it (``AIRFLOW_CONN_*`` in the
worker's environment). The emulator's control API (``Emulator.control``) needs no Airflow and is
used in the parent directly.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from _harness.children import connection_json
from _harness.lifecycle import Emulator

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from airflow_provider_gemini_batch.hooks import GeminiBatchHook

T = TypeVar("T")
MODEL = "gemini-2.5-flash"
#: A fixture call may wait while the emulator writes a results file of a million lines.
_REQUEST_TIMEOUT_SECONDS = 3600
_PING = {"request": {"contents": [{"parts": [{"text": "ping"}]}]}}


@dataclass(frozen=True)
class ResultsJob:
    """A finished file job and how long the emulator took to make it.

    :param create_seconds: the create call (the emulator counts the input file's requests).
    :param results_seconds: the first get that saw it SUCCEEDED (the emulator writes the results file).
    """

    batch_name: str
    results_file: str
    create_seconds: float
    results_seconds: float


def start_worker() -> None:
    """Start the worker now, so its Airflow import overlaps other work instead of delaying a row."""
    _worker().submit(_import_hook)


def create_jobs(emulator: Emulator, count: int) -> list[str]:
    """Create ``count`` inline jobs of one request each with ``GeminiBatchHook.create_batch``; return their names."""
    return _call(_create_jobs, emulator, count)


def file_size(emulator: Emulator, name: str) -> int:
    """A file's ``sizeBytes`` as the Files API reports it (``GeminiBatchHook.get_file``)."""
    return _call(_file_size, emulator, name)


def delete_file(emulator: Emulator, name: str) -> None:
    """Delete a stored file so its bytes leave the disk (``GeminiBatchHook.delete_file``)."""
    _call(_delete_file, emulator, name)


def results_job(emulator: Emulator, source: Path, display_name: str) -> ResultsJob:
    """Upload ``source``, create a file job on it and get it once: the emulator writes its results then."""
    return _call(_results_job, emulator, str(source), display_name)


# -- the parent's side ------------------------------------------------------------------------------

_worker_lock = threading.Lock()


def _worker() -> ProcessPoolExecutor:
    """The one worker process, started on first use (rows run in threads, hence the lock)."""
    with _worker_lock:
        return _start_pool()


@functools.cache
def _start_pool() -> ProcessPoolExecutor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    home = tempfile.mkdtemp(prefix="gemini-bench-fixtures-")
    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_configure_airflow,
        initargs=(home,),
    )
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    atexit.register(pool.shutdown)
    return pool


def _call(function: Callable[..., T], emulator: Emulator, *args: Any) -> T:
    return _worker().submit(function, emulator.base_url, emulator.api_key, *args).result()


# -- the worker's side ------------------------------------------------------------------------------


def _configure_airflow(home: str) -> None:
    """Give the worker a throwaway AIRFLOW_HOME and quiet logs, before anything imports Airflow."""
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )


def _import_hook() -> None:
    from airflow_provider_gemini_batch.hooks import GeminiBatchHook  # noqa: F401


@contextmanager
def _hook(base_url: str, api_key: str) -> Iterator[GeminiBatchHook]:
    """A hook on a connection to the emulator at ``base_url``, closed after use.

    One per call: a later emulator of the same run may get the same port, and a cached client would
    then hold connections to one that has stopped.
    """
    from airflow_provider_gemini_batch.hooks import GeminiBatchHook

    conn_id = "gemini_benchmark_" + base_url.rsplit(":", 1)[-1]
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = connection_json(base_url, api_key, timeout=_REQUEST_TIMEOUT_SECONDS)
    hook = GeminiBatchHook(conn_id)
    try:
        yield hook
    finally:
        hook.close()


def _create_jobs(base_url: str, api_key: str, count: int) -> list[str]:
    with _hook(base_url, api_key) as hook:
        return [hook.create_batch(MODEL, requests=[_PING]).name for _ in range(count)]


def _file_size(base_url: str, api_key: str, name: str) -> int:
    with _hook(base_url, api_key) as hook:
        return hook.get_file(name).size_bytes


def _delete_file(base_url: str, api_key: str, name: str) -> None:
    with _hook(base_url, api_key) as hook:
        hook.delete_file(name)


def _results_job(base_url: str, api_key: str, source: str, display_name: str) -> ResultsJob:
    from airflow_provider_gemini_batch.models import BatchState

    with _hook(base_url, api_key) as hook:
        input_file = hook.upload_file(source, display_name=display_name).name
        started = time.perf_counter()
        batch = hook.create_batch(MODEL, input_file=input_file, display_name=display_name)
        create_seconds = time.perf_counter() - started
        started = time.perf_counter()
        batch = hook.get_batch(batch.name)
        results_seconds = time.perf_counter() - started
    if batch.state is not BatchState.SUCCEEDED or batch.responses_file is None:
        raise RuntimeError(f"{batch.name} is {batch.state.short_name}, expected SUCCEEDED with a results file.")
    return ResultsJob(batch.name, batch.responses_file, create_seconds, results_seconds)
