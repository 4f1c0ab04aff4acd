"""Webhooks: seconds from a job's completion to the downstream task's start, pushed vs polled, and API calls per job.

One real ``airflow standalone`` on loopback (``tests/deployment/_standalone.py`` starts it: LocalExecutor,
SQLite, the provider's plugin loaded from its entry point) serves the DAGs of ``dags_webhooks/``
against two emulators, each in its own process, so that each mode's API calls are counted apart:

- **webhook**: ``bench_webhook_submit`` submits a job whose ``webhookConfig`` points at the
  api-server's receiver (``/gemini-batch/webhooks/gemini_default``) and ends at once. The emulator
  delivers the completion, signed with its job webhook secret, which is the connection's
  ``webhook_secret``; the receiver records an asset event; ``bench_webhook_downstream``, scheduled on
  ``gemini_batch_completed("gemini_default")`` with no watcher, starts its first task.
- **poll**: ``bench_poll`` waits for its job with the deferrable submit operator at the default poll
  interval (the connection ``gemini_poll``, the second emulator), then starts a downstream task.

Latency = the downstream task instance's ``start_date`` (the metadata DB) minus the job's ``endTime``
(the emulator's own record of when it ended). Round i gives one job to each mode, both RUNNING for
the same 20 + 30 i / n seconds, so the poll's phase against the job's end varies across rounds; rounds
start a few seconds apart and overlap. API calls per job are the emulators' request counts over the
jobs of the mode, taken once every end point is reached and before the benchmark asks for ``endTime``;
status polls are the ``GET batches/{id}`` among them.

The whole measurement runs in a child interpreter (this module with ``--child``), which starts and
stops the emulators and the deployment: the parent loads neither Airflow nor pytest (the deployment
harness reports failures with ``pytest.fail``). Stopped with SIGTERM, the child stops everything it
started before it exits.

    .venv/bin/python benchmarks/bench_webhooks.py            # four jobs per mode (about 2 minutes)
    .venv/bin/python benchmarks/bench_webhooks.py --quick    # one short job per mode (about 1 minute)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as harness
from _harness.lifecycle import quiet_env

DAGS_FOLDER = Path(__file__).resolve().parent / "dags_webhooks"
SUBMIT_DAG = "bench_webhook_submit"
DOWNSTREAM_DAG = "bench_webhook_downstream"
POLL_DAG = "bench_poll"
DAG_IDS = (SUBMIT_DAG, DOWNSTREAM_DAG, POLL_DAG)
RECEIVER_PATH = "/gemini-batch/webhooks/gemini_default"
ASSET_NAME = "gemini_batch_completed/gemini_default"
WEBHOOK_TARGET_SECONDS = 5.0
DEFAULT_POLL_SECONDS = 30  # airflow_provider_gemini_batch.settings.DEFAULT_POLL_INTERVAL, which the poll DAG uses
#: How long a job may take from its trigger to its create, and an end point after the last job ends.
CREATE_LIMIT_SECONDS = 90
END_POINT_SLACK_SECONDS = 120
#: The child stops itself before this (every wait is bounded); the parent then sends SIGTERM.
CHILD_LIMIT_SECONDS = 900
STOP_GRACE_SECONDS = 60


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one short job per mode")
    parser.add_argument("--child", nargs=2, metavar=("WORK_DIR", "REPORT"), help=argparse.SUPPRESS)
    return parser


def _running_seconds(quick: bool) -> list[float]:
    """Each round's job length: the same for both modes of a round, spread over one poll interval."""
    if quick:
        return [3.0]
    rounds = 4
    return [20.0 + i * DEFAULT_POLL_SECONDS / rounds for i in range(rounds)]


# -- the child: the deployment and the measurement ------------------------------------------------


def child(work_dir: str, report_path: str, *, quick: bool) -> None:
    """Start the emulators and ``airflow standalone``, run the rounds, write the report as JSON."""
    # SIGTERM unwinds the context managers below, which stop the deployment and the emulators.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.path.insert(0, str(harness.REPO_ROOT))
    from _harness.children import connection_json

    from tests.deployment._standalone import run_standalone

    work = Path(work_dir)
    (work / "standalone").mkdir()
    with (
        harness.running_emulator(work / "emulator-webhook") as pushed,
        harness.running_emulator(work / "emulator-poll") as polled,
    ):
        for emulator in (pushed, polled):
            emulator.control.configure(pending_seconds=0)
        started = time.monotonic()
        with run_standalone(
            work / "standalone",
            pushed,  # as an EmulatorHandle: the same base_url, api_key and control
            DAG_IDS,
            {"AIRFLOW_CONN_GEMINI_POLL": connection_json(polled.base_url, polled.api_key)},
            dags_folder=DAGS_FOLDER,
            connection_extra={"webhook_secret": pushed.control.job_webhook_secret()},
        ) as deployment:
            ready = time.monotonic() - started
            harness.progress(f"Webhooks: airflow standalone ready after {ready:.0f} s")
            report = _measure_in(deployment, pushed, polled, _running_seconds(quick))
            report["ready_seconds"] = ready
    Path(report_path).write_text(json.dumps(report))


def _measure_in(deployment: Any, pushed: harness.Emulator, polled: harness.Emulator, lengths: list[float]) -> dict:
    import httpx

    from tests.deployment._standalone import wait_for

    baseline = {"webhook": pushed.control.request_counts(), "poll": polled.control.request_counts()}
    webhook_uri = deployment.api_url + RECEIVER_PATH
    jobs: dict[str, list[dict[str, Any]]] = {"webhook": [], "poll": []}
    with httpx.Client(base_url=deployment.api_url, timeout=30) as api:
        for number, running_seconds in enumerate(lengths):
            for emulator in (pushed, polled):
                emulator.control.configure(running_seconds=running_seconds)
            runs = {
                "webhook": (SUBMIT_DAG, f"webhook-{number:02d}", {"webhook_uri": webhook_uri}, pushed),
                "poll": (POLL_DAG, f"poll-{number:02d}", {}, polled),
            }
            for dag_id, run_id, conf, _ in runs.values():
                body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
                response = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json=body)
                if response.status_code != 200:
                    raise RuntimeError(f"Triggering {dag_id}: {response.status_code} {response.text[:300]}")
            # The next round may change running_seconds only once both jobs of this one are created.
            for mode, (dag_id, run_id, _, emulator) in runs.items():
                name = wait_for(
                    deployment,
                    lambda emulator=emulator, run_id=run_id: _job_named(emulator, run_id),
                    CREATE_LIMIT_SECONDS,
                    f"the job of {dag_id} {run_id}",
                    dag_id,
                )
                jobs[mode].append({"run_id": run_id, "job": name, "running_seconds": running_seconds})
            harness.progress(f"Webhooks: round {number + 1} of {len(lengths)}, jobs RUNNING for {running_seconds:g} s")

    limit = max(lengths) + DEFAULT_POLL_SECONDS + END_POINT_SLACK_SECONDS
    wait_for(deployment, lambda: _end_points(deployment, jobs), limit, "every downstream task to start")
    # Counted before the benchmark's own GETs of endTime below.
    counts = {
        "webhook": _minus(pushed.control.request_counts(), baseline["webhook"]),
        "poll": _minus(polled.control.request_counts(), baseline["poll"]),
    }
    starts = _end_points(deployment, jobs)
    assert starts is not None
    deliveries = {delivery["batch"]: delivery for delivery in pushed.control.deliveries()}
    events = _event_times(deployment)
    for mode, emulator in (("webhook", pushed), ("poll", polled)):
        for job in jobs[mode]:
            end = _end_time(emulator, job["job"])
            start = starts[mode][job["job"]]
            job["latency"] = (start - end).total_seconds()
            job["status_polls"] = counts[mode].get(f"GET /v1beta/{job['job']}", 0)
            if mode == "webhook":
                delivery = deliveries.get(job["job"], {})
                job["delivery"] = delivery.get("outcome")
                job["attempts"] = len(delivery.get("attempts", []))
                if job["job"] in events:
                    job["to_event"] = (events[job["job"]] - end).total_seconds()
    return {"jobs": jobs, "counts": counts}


def _job_named(emulator: harness.Emulator, run_id: str) -> str | None:
    """The name of the job whose display name starts with ``run_id``, once it exists."""
    names = [batch["name"] for batch in emulator.control.batches() if batch["displayName"].startswith(run_id)]
    if len(names) > 1:
        raise RuntimeError(f"More than one job for {run_id}: {names}")
    return names[0] if names else None


def _end_points(deployment: Any, jobs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, datetime]] | None:
    """Each job's downstream task start by mode, once every one has started; else ``None``."""
    from tests.deployment._standalone import asset_events, query

    started = query(
        deployment.database,
        "SELECT dag_id, run_id, start_date FROM task_instance WHERE dag_id IN (?, ?)"
        " AND task_id IN ('downstream', 'after_completion') AND start_date IS NOT NULL",
        (DOWNSTREAM_DAG, POLL_DAG),
    )
    events = asset_events(deployment.database, ASSET_NAME)
    if started is None or events is None:
        return None
    starts = {(row["dag_id"], row["run_id"]): _utc(row["start_date"]) for row in started}
    # A webhook job's end point: the earliest start among the runs that consumed its event.
    consumers: dict[str, list[str]] = {}
    for event in events:
        batch = _announced(event.extra)
        if batch is not None:
            consumers.setdefault(batch, []).extend(event.run_ids)
    found: dict[str, dict[str, datetime]] = {"webhook": {}, "poll": {}}
    for job in jobs["webhook"]:
        runs = [(DOWNSTREAM_DAG, run) for run in consumers.get(job["job"], [])]
        times = [starts[run] for run in runs if run in starts]
        if not times:
            return None
        found["webhook"][job["job"]] = min(times)
    for job in jobs["poll"]:
        if (POLL_DAG, job["run_id"]) not in starts:
            return None
        found["poll"][job["job"]] = starts[POLL_DAG, job["run_id"]]
    return found


def _event_times(deployment: Any) -> dict[str, datetime]:
    """When the receiver recorded each job's asset event (the first, should there be more)."""
    from tests.deployment._standalone import asset_events

    times: dict[str, datetime] = {}
    for event in asset_events(deployment.database, ASSET_NAME) or []:
        batch = _announced(event.extra)
        if batch is not None:
            times.setdefault(batch, _utc(event.timestamp))
    return times


def _announced(extra: dict[str, Any]) -> str | None:
    from airflow_provider_gemini_batch.assets import CompletedBatch

    completed = CompletedBatch.from_extra(extra)
    return completed.batch if completed else None


def _end_time(emulator: harness.Emulator, job: str) -> datetime:
    import httpx

    response = httpx.get(f"{emulator.base_url}/v1beta/{job}", headers={"x-goog-api-key": emulator.api_key}, timeout=10)
    response.raise_for_status()
    body = response.json()
    return _utc(body.get("metadata", body)["endTime"])


def _minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {route: count - before.get(route, 0) for route, count in after.items() if count > before.get(route, 0)}


def _utc(value: str) -> datetime:
    """A timestamp from the DB or the API (``...Z``, ``+00:00`` or naive UTC) as an aware datetime."""
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# -- the parent ----------------------------------------------------------------------------------


def measure(*, quick: bool) -> list[harness.Row]:
    """Run the child (it starts and stops everything); return the rows."""
    lengths = _running_seconds(quick)
    span = f"{min(lengths):g}-{max(lengths):g}" if len(lengths) > 1 else f"{lengths[0]:g}"
    harness.progress(f"Webhooks: airflow standalone and {len(lengths)} job(s) per mode, RUNNING {span} s ...")
    with harness.scratch_dir("gemini-bench-webhooks-") as work:
        report_path = work / "report.json"
        log_path = work / "child.log"
        command = [harness.PYTHON, str(Path(__file__).resolve()), "--child", str(work / "run"), str(report_path)]
        (work / "run").mkdir()
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [*command, *(["--quick"] if quick else [])],
                cwd=harness.REPO_ROOT,
                env=quiet_env(),
                stdout=log,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert process.stderr is not None
            relay = threading.Thread(target=_relay, args=(process.stderr, log), daemon=True)
            relay.start()
            try:
                process.wait(CHILD_LIMIT_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            finally:
                _stop_child(process)
                relay.join(10)
        if process.returncode != 0 or not report_path.exists():
            tail = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"The webhooks child failed (exit {process.returncode}):\n{tail}")
        report = json.loads(report_path.read_text())
    return _rows(report, quick=quick)


def _relay(stream: TextIO, log: TextIO) -> None:
    """Keep the child's stderr in its log; show its progress lines as they come."""
    for line in stream:
        log.write(line)
        if line.startswith("Webhooks:"):
            harness.progress(line.rstrip())


def _stop_child(process: subprocess.Popen[Any]) -> None:
    """SIGTERM (the child then stops the deployment and the emulators), SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _rows(report: dict[str, Any], *, quick: bool) -> list[harness.Row]:
    webhook, poll = report["jobs"]["webhook"], report["jobs"]["poll"]
    name = "7 webhooks"
    poll_label = f"poll at {DEFAULT_POLL_SECONDS} s"

    def latencies(jobs: list[dict[str, Any]]) -> str:
        return ", ".join(f"{job['latency']:.1f}" for job in jobs)

    def per_job(jobs: list[dict[str, Any]], mode: str) -> tuple[float, float, str]:
        counts = report["counts"][mode]
        polls = sum(job["status_polls"] for job in jobs) / len(jobs)
        total = sum(counts.values()) / len(jobs)
        routes: dict[str, int] = {}
        for route, count in counts.items():
            generic = re.sub(r"batches/[^/:]+", "batches/{id}", route)
            generic = re.sub(r"models/[^/:]+", "models/{model}", generic)
            routes[generic] = routes.get(generic, 0) + count
        breakdown = "; ".join(f"{route} {count / len(jobs):g}" for route, count in sorted(routes.items()))
        return polls, total, breakdown or "none"

    webhook_median = statistics.median(job["latency"] for job in webhook)
    poll_median = statistics.median(job["latency"] for job in poll)
    to_event = [job["to_event"] for job in webhook if "to_event" in job]
    outcomes = sorted({f"{job['delivery']} ({job['attempts']} attempt(s))" for job in webhook})
    webhook_polls, webhook_total, webhook_routes = per_job(webhook, "webhook")
    poll_polls, poll_total, poll_routes = per_job(poll, "poll")
    lengths = ", ".join(f"{job['running_seconds']:g}" for job in poll)
    jobs = f"{len(webhook)} job(s) per mode, RUNNING {lengths} s"
    delivered = all(job["delivery"] == "delivered" for job in webhook)
    return [
        harness.Row(
            name,
            "completion -> downstream start, webhook",
            "s",
            webhook_median,
            target=f"median < {WEBHOOK_TARGET_SECONDS:.0f} s",
            met=webhook_median < WEBHOOK_TARGET_SECONDS and delivered,
            note=(
                f"median of {jobs}; each: {latencies(webhook)} s (max {max(job['latency'] for job in webhook):.1f}); "
                f"endTime -> asset event recorded: median "
                f"{statistics.median(to_event) if to_event else float('nan'):.2f} s; deliveries {', '.join(outcomes)}; "
                f"airflow standalone ready after {report['ready_seconds']:.0f} s"
            ),
        ),
        harness.Row(
            name,
            f"completion -> downstream start, {poll_label}",
            "s",
            poll_median,
            note=f"median of {jobs}; each: {latencies(poll)} s (max {max(job['latency'] for job in poll):.1f})",
        ),
        harness.Row(
            name,
            "status polls per job, webhook",
            "GET/job",
            webhook_polls,
            target="0",
            met=webhook_polls == 0,
        ),
        harness.Row(
            name,
            f"status polls per job, {poll_label}",
            "GET/job",
            poll_polls,
            note="each: " + ", ".join(str(job["status_polls"]) for job in poll),
        ),
        harness.Row(name, "API calls per job, webhook", "calls/job", webhook_total, note=webhook_routes),
        harness.Row(name, f"API calls per job, {poll_label}", "calls/job", poll_total, note=poll_routes),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        child(*args.child, quick=args.quick)
        return 0
    harness.print_rows(measure(quick=args.quick))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
