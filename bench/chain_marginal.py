"""Marginal cost of one step of a chain: for comparing two trees interleaved, one process each.

python bench/chain_marginal.py KIND [REPS]    (KIND: noop, python, python-inline)

Runs chain(10) and chain(1000) of ``KIND`` steps ``REPS`` times (default 3) and prints one JSON
line: the median marginal ms per step, ``(T(1000) - T(10)) / 990``, of wall and of CPU time.
Point PYTHONPATH at another tree's ``noetl`` to measure that tree.
"""

from __future__ import annotations

import json
import sys

from common import median, timed_run
from gen import chain


def main(kind: str, reps: int) -> None:
    timed_run(chain(10, kind))  # warm-up: imports, compiled code
    walls, cpus = [], []
    for _ in range(reps):
        short, long = timed_run(chain(10, kind)), timed_run(chain(1_000, kind))
        walls.append((long.wall - short.wall) / 990 * 1e3)
        cpus.append((long.cpu - short.cpu) / 990 * 1e3)
    print(json.dumps({"kind": kind, "wall_ms": round(median(walls), 3), "cpu_ms": round(median(cpus), 3)}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "python", int(sys.argv[2]) if len(sys.argv) > 2 else 3)
