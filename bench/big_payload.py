"""What one ``POST /api/execute`` with a big payload (``--items`` numbers, the most a 10 MB body
holds is about 5 million) costs the server, and how long other clients wait meanwhile: a server
alone on a throwaway PostgreSQL with fsync on, a loop playbook registered, one submission while
another client asks ``GET /api/health`` every 50 ms.

    python bench/big_payload.py [--items 1000000] [--repeat 2] [--compare-with REF]

Prints one line per server: the submission's wall time, its server CPU, and the longest a health
request waited meanwhile. With ``--compare-with REF`` a server on the code of git revision REF is
measured before each one on the working tree, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from distributed import cpu_seconds, export_revision  # bench/distributed.py (also sets sys.path)
from support.pgcluster import postgres_cluster
from test_distributed_cluster import Cluster, create_database

LOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: big_payload, path: bench/big_payload}
workflow:
  - step: start
    loop: {in: "{{ workload.items }}", iterator: item}
    tool: {kind: noop}
"""


def submission(pg: dict[str, Any], home: Path, items: int, code: Path | None) -> dict[str, float]:
    cluster = Cluster(create_database(pg), home)
    if code is not None:
        cluster.env["PYTHONPATH"] = str(code)
    cluster.start_server()
    try:
        path = cluster.register(LOOP)["path"]
        assert cluster.server is not None
        waits, done = [0.0], threading.Event()

        def ask_health() -> None:
            with httpx.Client(base_url=cluster.url, timeout=600) as client:
                while not done.is_set():
                    began = time.perf_counter()
                    client.get("/api/health")
                    waits[0] = max(waits[0], time.perf_counter() - began)
                    time.sleep(0.05)

        asker = threading.Thread(target=ask_health)
        asker.start()
        cpu, began = cpu_seconds(cluster.server.pid), time.perf_counter()
        try:
            response = cluster.client.post("/api/execute", json={"path": path, "payload": {"items": [0] * items}},
                                           timeout=600)
            assert response.status_code == 200, response.text
            wall, cpu = time.perf_counter() - began, cpu_seconds(cluster.server.pid) - cpu
        finally:
            done.set()
            asker.join()
        return {"wall_s": wall, "cpu_s": cpu, "worst_wait_s": waits[0]}
    finally:
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--compare-with", default=None, metavar="REF")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="noetl-bench-payload-"))
    before = export_revision(args.compare_with, home / "before") if args.compare_with else None
    sides = ([(args.compare_with, before)] if before is not None else []) + [("working tree", None)]
    print(f"items {args.items:,}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| run | code | submission wall s | server CPU s | longest health wait meanwhile s |")
    print("|---|---|---|---|---|")
    with postgres_cluster(durable=True) as pg:
        for n in range(args.repeat):
            for side, (name, code) in enumerate(sides):
                r = submission(pg, home / f"{n}-{side}", args.items, code)
                print(f"| {n + 1} | {name} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['worst_wait_s']:.1f} |",
                      flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
