"""Command line: ``python -m airflow_provider_gemini_batch.emulator --port 8765``.

Prints ``Gemini Batch emulator listening on http://127.0.0.1:PORT`` once it accepts connections,
then serves until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_gemini_batch.emulator._config import (
    DEFAULT_CHUNK_GRANULARITY,
    DEFAULT_EMBEDDING_MODELS,
    DEFAULT_GENERATION_MODELS,
)
from airflow_provider_gemini_batch.emulator._server import run_emulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_gemini_batch.emulator", description="Gemini API Batch Mode emulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--api-key", default=None, help="require this API key (default: accept any request)")
    parser.add_argument("--data-dir", default=None, help="where to keep file bytes (default: a temporary dir)")
    parser.add_argument("--pending-seconds", type=float, default=0.0, help="how long new jobs stay PENDING")
    parser.add_argument("--running-seconds", type=float, default=0.0, help="how long jobs then stay RUNNING")
    parser.add_argument(
        "--chunk-granularity", type=int, default=DEFAULT_CHUNK_GRANULARITY, help="upload chunk granularity"
    )
    parser.add_argument(
        "--job-webhook-secret",
        default=None,
        help="the whsec_ secret signing deliveries to jobs' own webhook URIs (default: a fresh one)",
    )
    parser.add_argument(
        "--generation-model",
        action="append",
        dest="generation_models",
        metavar="MODEL",
        help="a model generation batches may name; repeat it for each one; replaces the default list",
    )
    parser.add_argument(
        "--embedding-model",
        action="append",
        dest="embedding_models",
        metavar="MODEL",
        help="a model embeddings batches may name; repeat it for each one; replaces the default list",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the emulator until SIGINT or SIGTERM."""
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with run_emulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        pending_seconds=args.pending_seconds,
        running_seconds=args.running_seconds,
        chunk_granularity=args.chunk_granularity,
        generation_models=args.generation_models or DEFAULT_GENERATION_MODELS,
        embedding_models=args.embedding_models or DEFAULT_EMBEDDING_MODELS,
        job_webhook_secret=args.job_webhook_secret,
    ) as base_url:
        print(f"Gemini Batch emulator listening on {base_url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
