"""Helpers shared by the benchmarks: timing a NoETL run, medians, the machine description."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # CPU seconds of this process, all threads
    gc: float  # seconds spent in the garbage collector (wall)


_gc_seconds = [0.0, 0.0]  # total so far, start of the collection in progress


def _gc_timer(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_seconds[1] = time.perf_counter()
    else:
        _gc_seconds[0] += time.perf_counter() - _gc_seconds[1]


gc.callbacks.append(_gc_timer)


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed_run(yaml_text: str) -> Run:
    """One ``noetl.run`` on a fresh NOETL_HOME (a new SQLite file); the run must complete."""
    import noetl

    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as home:
        os.environ["NOETL_HOME"] = home
        wall, cpu, in_gc = time.perf_counter(), time.process_time(), _gc_seconds[0]
        doc = noetl.run(yaml_text)
        run = Run(time.perf_counter() - wall, time.process_time() - cpu, _gc_seconds[0] - in_gc)
    if doc.get("status") != "completed":
        raise SystemExit(f"benchmark playbook did not complete: {doc.get('status')} {doc.get('error')}")
    return run


def median_run(yaml_text: str, reps: int) -> Run:
    """Median of each figure over ``reps`` runs."""
    runs = [timed_run(yaml_text) for _ in range(reps)]
    return Run(*(median(list(column)) for column in zip(*runs, strict=True)))


def loadavg() -> str:
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "unknown"


def machine() -> str:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{date}; nproc {len(os.sched_getaffinity(0))}; CPU {model}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()} ({sys.executable}); load average {loadavg()}")
