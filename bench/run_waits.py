"""Where a chain run's wall time goes: on a CPU, waiting for one, or waiting for anything else.

python bench/run_waits.py [KIND] [N]    (KIND: noop, python, python-inline; N default 1000)

One ``noetl.run`` of an ``N``-step chain (after a 10-step warm-up), on a fresh NOETL_HOME. Linux's
``/proc/<pid>/task/*/schedstat`` gives, per thread, the time it ran and the time it was ready but
waited on a run queue; what is left of the wall time is waiting for something else (the disk, a
lock, a thread hand-off, a sleep). On a busy machine wall time is mostly the run queue, which no
change to NoETL can cut; a wait of NoETL's own shows in the last column.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
import time
from pathlib import Path

from common import loadavg
from gen import chain

import noetl


def scheduler_seconds() -> tuple[float, float]:
    """(on a CPU, waiting for a CPU) of this process's threads alive now, in seconds."""
    ran = waited = 0
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/schedstat"):
        try:
            on_cpu, on_queue, _ = Path(path).read_text().split()
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        ran, waited = ran + int(on_cpu), waited + int(on_queue)
    return ran / 1e9, waited / 1e9


def one_run(text: str) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as home:
        os.environ["NOETL_HOME"] = home
        started, (ran, waited) = time.perf_counter(), scheduler_seconds()
        doc = noetl.run(text)
        wall, (ran_after, waited_after) = time.perf_counter() - started, scheduler_seconds()
    if doc.get("status") != "completed":
        raise SystemExit(f"benchmark playbook did not complete: {doc.get('status')} {doc.get('error')}")
    return wall, ran_after - ran, waited_after - waited


def main(kind: str, steps: int) -> None:
    one_run(chain(10, kind))
    wall, ran, waited = one_run(chain(steps, kind))
    print(f"{steps}-step {kind} chain, load {loadavg()}: wall {wall * 1e3:.1f} ms = on a CPU {ran * 1e3:.1f} ms"
          f" + waiting for a CPU {waited * 1e3:.1f} ms + other waits {max(wall - ran - waited, 0) * 1e3:.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "python", int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
