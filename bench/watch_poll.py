"""Server CPU per poll of a watcher (`noetl status --watch`, `noetl logs -f`, `exec --wait`) on an
execution with a long log: the execution's own route against the light state route.

python bench/watch_poll.py [--items N] [--polls N]

A server and two workers (`noetl server|worker start`) on a throwaway PostgreSQL cluster run one
loop of N ``noop`` iterations (default 10,000: as many events) to the end. Then the watcher's
status question is asked ``--polls`` times of each route, in alternating blocks of 20, and the
server process's CPU time (utime + stime from /proc/PID/stat) per request is reported with the
wall time per request as the client saw it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from common import loadavg  # noqa: E402

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: watch_poll, path: bench/watch_poll}}
workflow:
  - step: start
    loop: {{in: "{{{{ range({items}) | list }}}}", iterator: i, spec: {{mode: parallel, max_in_flight: 50}}}}
    tool: {{kind: noop}}
"""
BLOCK = 20


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--polls", type=int, default=200)
    args = parser.parse_args()
    from support.pgcluster import postgres_cluster
    from test_distributed_cluster import Cluster, create_database

    print(f"load average before: {loadavg()}\n")
    with postgres_cluster(durable=True) as pg, tempfile.TemporaryDirectory(prefix="noetl-bench-") as home:
        cluster = Cluster(create_database(pg), Path(home))
        try:
            cluster.start_server()
            for name in ("w1", "w2"):
                cluster.start_worker(name, concurrency=8)
            path = cluster.register(PLAYBOOK.format(items=args.items))["path"]
            execution_id = cluster.execute(path)
            assert cluster.wait(execution_id, timeout=1800)["status"] == "completed"
            events = len(cluster.client.get(f"/api/executions/{execution_id}/events").json())
            assert cluster.server is not None
            routes = {"GET /api/executions/{id}": f"/api/executions/{execution_id}",
                      "GET /api/executions/{id}/state": f"/api/executions/{execution_id}/state"}
            cpu = dict.fromkeys(routes, 0.0)
            wall = dict.fromkeys(routes, 0.0)
            for _ in range(max(args.polls // BLOCK, 1)):
                for name, url in routes.items():
                    began_cpu, began = cpu_seconds(cluster.server.pid), time.perf_counter()
                    for _ in range(BLOCK):
                        assert cluster.client.get(url).json()["status"] == "completed"
                    wall[name] += time.perf_counter() - began
                    cpu[name] += cpu_seconds(cluster.server.pid) - began_cpu
        finally:
            cluster.close()
    polls = max(args.polls // BLOCK, 1) * BLOCK
    print(f"{args.items:,} noop iterations, {events:,} events; {polls} polls of each route\n")
    print("| route | server CPU ms/poll | wall ms/poll |")
    print("|---|---:|---:|")
    for name in routes:
        print(f"| `{name}` | {cpu[name] / polls * 1e3:.2f} | {wall[name] / polls * 1e3:.2f} |")
    heavy, light = (cpu[name] for name in routes)
    print(f"\nratio of server CPU: {heavy / max(light, 1e-9):.0f}x")
    print(f"\nload average after: {loadavg()}")


if __name__ == "__main__":
    main()
