"""Benchmarks of the distributed runtime: server + workers + PostgreSQL on this machine.

    python bench/distributed.py [--workers 1,2,4] [--loop 10000] [--out bench/results/distributed.md]

Starts a throwaway PostgreSQL (tests/support/pgcluster.py), a server and N worker processes, and
measures:

- throughput: trivial (noop) tool calls per second end to end, from submission to the last
  execution's completion, for each worker count (20 executions x 250-item parallel loops);
- dispatch latency: for a chain of sequential steps, the time from the decision that queued a
  command (command.created_at) to a worker leasing it (command.heartbeat_at at lease time);
- a large parallel loop: wall time, peak RSS of the server and workers, event-table bytes per step;
- EXPLAIN (ANALYZE, BUFFERS) of the lease query with a realistic queue.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from support.pgcluster import postgres_cluster  # noqa: E402
from test_distributed_cluster import Cluster, create_database  # noqa: E402

LOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: bench_loop, path: bench/loop}}
workload: {{n: 250}}
workflow:
  - step: start
    loop: {{in: "{{{{ range(workload.n) | list }}}}", iterator: i, spec: {{mode: parallel, max_in_flight: {mif}}}}}
    tool: {{kind: noop}}
"""

CHAIN_STEPS = 40


def chain_playbook() -> str:
    steps = []
    for n in range(CHAIN_STEPS):
        nxt = f"\n    next: [{{step: s{n + 1}}}]" if n + 1 < CHAIN_STEPS else ""
        steps.append(f"  - step: s{n}\n    tool: {{kind: noop}}{nxt}")
    return ("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: bench_chain, path: bench/chain}\n"
            "workflow:\n" + "\n".join(steps) + "\n")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_all(cluster: Cluster, timeout: float = 3600) -> None:
    """Poll the execution rows (cheap), not the status documents (which fold every event)."""
    deadline = time.monotonic() + timeout
    while cluster.sql("SELECT count(*) FROM noetl.execution WHERE status = 'running'")[0][0]:
        if time.monotonic() > deadline:
            raise TimeoutError("executions still running")
        time.sleep(0.05)
    assert cluster.sql("SELECT count(*) FROM noetl.execution WHERE status <> 'completed'")[0][0] == 0


def start(pg: dict[str, Any], workers: int, home: Path, concurrency: int = 32) -> Cluster:
    cluster = Cluster(create_database(pg), home)
    cluster.start_server()
    for n in range(workers):
        cluster.start_worker(f"w{n}", concurrency=concurrency)
    time.sleep(1.0)  # let the workers connect and LISTEN
    return cluster


def throughput(pg: dict[str, Any], workers: int, home: Path, executions: int = 20, items: int = 250) -> dict[str, Any]:
    cluster = start(pg, workers, home)
    try:
        cluster.register(LOOP.format(mif=64))
        began = time.perf_counter()
        for _ in range(executions):
            cluster.execute("bench/loop", {"n": items})
        wait_all(cluster)
        elapsed = time.perf_counter() - began
        calls = cluster.sql("SELECT count(*) FROM noetl.event WHERE event_type = 'call.done'")[0][0]
        return {"workers": workers, "calls": calls, "seconds": round(elapsed, 2), "per_second": round(calls / elapsed)}
    finally:
        cluster.close()


def dispatch_latency(pg: dict[str, Any], home: Path, runs: int = 10) -> dict[str, Any]:
    cluster = start(pg, 2, home, concurrency=8)
    try:
        cluster.register(chain_playbook())
        for _ in range(runs):
            assert cluster.wait(cluster.execute("bench/chain"), timeout=120)["status"] == "completed"
        rows = cluster.sql("SELECT EXTRACT(EPOCH FROM heartbeat_at - created_at) * 1000 FROM noetl.command "
                           "WHERE step <> 's0'")
        latencies = sorted(float(row[0]) for row in rows)
        return {"samples": len(latencies), "p50_ms": round(statistics.median(latencies), 2),
                "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2), "max_ms": round(latencies[-1], 2)}
    finally:
        cluster.close()


def large_loop(pg: dict[str, Any], home: Path, items: int) -> dict[str, Any]:
    cluster = start(pg, 2, home)
    try:
        cluster.register(LOOP.format(mif=128))
        began = time.perf_counter()
        execution_id = cluster.execute("bench/loop", {"n": items})
        wait_all(cluster)
        elapsed = time.perf_counter() - began
        doc = cluster.status(execution_id)
        assert doc["status"] == "completed" and doc["steps"]["start"]["result"]["stats"]["success"] == items
        events, event_bytes = cluster.sql("SELECT count(*), pg_total_relation_size('noetl.event') FROM noetl.event")[0]
        command_bytes = cluster.sql("SELECT pg_total_relation_size('noetl.command')")[0][0]
        assert cluster.server is not None
        return {
            "items": items, "seconds": round(elapsed, 2), "per_second": round(items / elapsed),
            "events": events, "event_bytes_per_step": round(event_bytes / items),
            "command_bytes_per_step": round(command_bytes / items),
            "server_peak_rss_mb": round(peak_rss_mb(cluster.server.pid), 1),
            "worker_peak_rss_mb": [round(peak_rss_mb(p.pid), 1) for p in cluster.workers.values()],
            "explain": explain_lease(cluster),
        }
    finally:
        cluster.close()


def explain_lease(cluster: Cluster) -> str:
    """The lease query's plan over the table the large loop left behind (every row done), plus a few
    queued rows, as a worker would see it."""
    rows = cluster.sql(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT command_id FROM noetl.command WHERE status = 'queued' "
        "ORDER BY queue_id LIMIT 32 FOR UPDATE SKIP LOCKED")
    return "\n".join(row[0] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--loop", type=int, default=10_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "distributed.md"))
    args = parser.parse_args()
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="noetl-bench-"))
    with postgres_cluster() as pg:
        results = [throughput(pg, int(n), home / f"t{n}") for n in args.workers.split(",")]
        for row in results:
            print(row, flush=True)
        latency = dispatch_latency(pg, home / "latency")
        print(latency, flush=True)
        big = large_loop(pg, home / "large", args.loop)
        print({k: v for k, v in big.items() if k != "explain"}, flush=True)
    write_report(Path(args.out), results, latency, big, " ".join(sys.argv[1:]))


def write_report(out: Path, results: list[dict[str, Any]], latency: dict[str, Any], big: dict[str, Any],
                 argv: str) -> None:
    lines = ["# Distributed runtime benchmark", "",
             f"Command: `python bench/distributed.py {argv}`".replace(" `", " `").rstrip(), "",
             "Server, workers and PostgreSQL 15 on one 2-core machine (throwaway cluster, fsync off).", "",
             "## Throughput (noop tool calls, 20 executions x 250-item parallel loops, concurrency 32/worker)", "",
             "| workers | calls | seconds | calls/s |", "|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['calls']} | {r['seconds']} | {r['per_second']} |" for r in results]
    lines += ["", f"## Dispatch latency ({CHAIN_STEPS}-step sequential chain x 10, 2 workers)", "",
              "Decision that queued the command (command.created_at) to a worker's lease (heartbeat_at).", "",
              f"samples {latency['samples']}, p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, "
              f"max {latency['max_ms']} ms", "",
              f"## Large parallel loop ({big['items']} items, max_in_flight 128, 2 workers)", "",
              f"- wall time {big['seconds']} s ({big['per_second']} items/s), {big['events']} events",
              f"- event table (with indexes): {big['event_bytes_per_step']} bytes per step; "
              f"command table: {big['command_bytes_per_step']} bytes per step",
              f"- peak RSS: server {big['server_peak_rss_mb']} MB, workers {big['worker_peak_rss_mb']} MB", "",
              "## EXPLAIN of the lease query after the large loop", "", "```", big["explain"], "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
