"""Readings of a process's memory and CPU (Linux ``/proc`` and ``getrusage``), the machine's CPU, and a percentile."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Sequence


def current_rss_bytes() -> int:
    """This process's resident set size now (Linux ``VmRSS``)."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far: ``ru_maxrss``, in KiB on Linux."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def address_space_peak_rss_bytes() -> int:
    """Peak RSS of this address space only (``VmHWM``).

    ``ru_maxrss`` can inherit the parent's peak across ``exec``; ``VmHWM`` cannot, so a gap between
    the two means the parent, not the child, set the number.
    """
    return _status_kib("VmHWM") * 1024


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_ticks() -> tuple[int, int]:
    """The machine's (busy, total) CPU ticks since boot, all cores together (``/proc/stat``)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def wait_until_quiet(
    *,
    busy_below: float = 0.25,
    timeout: float = 60.0,
    interval: float = 1.0,
    sample: Callable[[], tuple[int, int]] = cpu_ticks,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.monotonic,
) -> tuple[float, float]:
    """Wait until the cores were less than ``busy_below`` busy over one ``interval``, or ``timeout``.

    :return: how busy they were over the last interval (0 to 1), and the seconds waited.
    """
    started, previous = now(), sample()
    while True:
        sleep(interval)
        current = sample()
        busy = (current[0] - previous[0]) / max(current[1] - previous[1], 1)
        waited = now() - started
        if busy < busy_below or waited >= timeout:
            return busy, waited
        previous = current


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")
