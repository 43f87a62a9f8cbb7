"""What one ``POST /api/execute`` costs the server: a server alone (no workers) on a throwaway
PostgreSQL with fsync on, one playbook registered, then one submission (the first of the server's
life) and ``--submissions`` more, one after another as a client would send them.

    python bench/submissions.py [--submissions 100] [--repeat 3] [--compare-with REF]

Prints one line per server: the first submission's wall time and the next ones' mean wall time and
server CPU (from /proc: clock ticks of 10 ms, so the first submission's CPU is coarse). With
``--compare-with REF`` a server on the code of git revision REF is measured before each one on the
working tree, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from distributed import cpu_seconds, export_revision  # bench/distributed.py (also sets sys.path)
from gen import mixed_chain
from support.pgcluster import postgres_cluster
from test_distributed_cluster import Cluster, create_database


def submissions(pg: dict[str, Any], home: Path, count: int, code: Path | None) -> dict[str, float]:
    cluster = Cluster(create_database(pg), home)
    if code is not None:
        cluster.env["PYTHONPATH"] = str(code)
    cluster.start_server()
    try:
        path = cluster.register(mixed_chain(50, ["noop", "python"], path="bench/chain_mixed"))["path"]
        assert cluster.server is not None
        pid = cluster.server.pid
        cpu, began = cpu_seconds(pid), time.perf_counter()
        cluster.execute(path)
        first_wall, first_cpu = time.perf_counter() - began, cpu_seconds(pid) - cpu
        cpu, began = cpu_seconds(pid), time.perf_counter()
        for _ in range(count):
            cluster.execute(path)
        wall, cpu = time.perf_counter() - began, cpu_seconds(pid) - cpu
        return {"first_wall_ms": first_wall * 1000, "first_cpu_ms": first_cpu * 1000,
                "wall_ms": wall * 1000 / count, "cpu_ms": cpu * 1000 / count}
    finally:
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=100, help="submissions after the first, per server")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare-with", default=None, metavar="REF")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="noetl-bench-submit-"))
    before = export_revision(args.compare_with, home / "before") if args.compare_with else None
    sides = ([(args.compare_with, before)] if before is not None else []) + [("working tree", None)]
    print("| run | code | first submission: wall ms (server CPU ms) | next: wall ms each | next: server CPU ms each |")
    print("|---|---|---|---|---|")
    with postgres_cluster(durable=True) as pg:
        for n in range(args.repeat):
            for side, (name, code) in enumerate(sides):
                r = submissions(pg, home / f"{n}-{side}", args.submissions, code)
                print(f"| {n + 1} | {name} | {r['first_wall_ms']:.1f} ({r['first_cpu_ms']:.0f}) | {r['wall_ms']:.2f} "
                      f"| {r['cpu_ms']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
