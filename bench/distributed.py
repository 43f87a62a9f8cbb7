"""Benchmarks of the distributed runtime: server + workers + PostgreSQL on this machine.

    python bench/distributed.py [--workers 1,2,4] [--repeat 3] [--loop 10000] [--compare-with REF]
                                [--out bench/results/distributed.md]

Starts a throwaway PostgreSQL (tests/support/pgcluster.py), a server and N worker processes, and
measures:

- throughput: trivial (noop) tool calls per second end to end, from submission to the last
  execution's completion, for each worker count (20 executions x 250-item parallel loops), the
  median of ``--repeat`` runs, with the CPU time each call cost in the workers and in PostgreSQL;
  with ``--compare-with REF`` the same runs, interleaved, on the code of git revision REF (servers and
  workers started from an export of it), so a noisy machine affects both alike;
- dispatch latency: for a chain of sequential steps, the time from the decision that queued a
  command (command.created_at) to a worker leasing it (command.heartbeat_at at lease time);
- a large parallel loop: wall time, peak RSS of the server and workers (the server also answers the
  final status request), event-table bytes per step;
- EXPLAIN (ANALYZE, BUFFERS) of the lease query over the table the large loop left, with a queue.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

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


def _stat(pid: int | str) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()  # the fields after the command name


def cpu_seconds(pid: int | str, *, reaped_children: bool = False) -> float:
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu(pg: dict[str, Any]) -> float:
    """CPU seconds of the cluster so far: the postmaster, its live backends and those that exited."""
    postmaster = int((Path(pg["base"]) / "data" / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster, reaped_children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(entry.name)[1]) == postmaster:
                    total += cpu_seconds(entry.name)
            except (OSError, ValueError, IndexError):
                continue  # exited meanwhile
    return total


def wait_all(cluster: Cluster, timeout: float = 3600) -> None:
    """Poll the execution rows (cheap, on one connection), not the status documents."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM noetl.execution WHERE status = 'running'").fetchone()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError("executions still running")
            time.sleep(0.05)
    assert cluster.sql("SELECT count(*) FROM noetl.execution WHERE status <> 'completed'")[0][0] == 0


def start(pg: dict[str, Any], workers: int, home: Path, concurrency: int = 32, code: Path | None = None) -> Cluster:
    """Server and workers on a new database; ``code``: run them from that source tree instead."""
    cluster = Cluster(create_database(pg), home)
    if code is not None:
        cluster.env["PYTHONPATH"] = str(code)
    cluster.start_server()
    for n in range(workers):
        cluster.start_worker(f"w{n}", concurrency=concurrency)
    time.sleep(1.0)  # let the workers connect and LISTEN
    return cluster


def throughput(pg: dict[str, Any], workers: int, home: Path, executions: int = 20, items: int = 250,
               code: Path | None = None) -> dict[str, Any]:
    cluster = start(pg, workers, home, code=code)
    try:
        cluster.register(LOOP.format(mif=64))
        pids = [p.pid for p in cluster.workers.values()]
        worker_cpu, pg_cpu = sum(map(cpu_seconds, pids)), postgres_cpu(pg)
        began = time.perf_counter()
        for _ in range(executions):
            cluster.execute("bench/loop", {"n": items})
        wait_all(cluster)
        elapsed = time.perf_counter() - began
        worker_cpu, pg_cpu = sum(map(cpu_seconds, pids)) - worker_cpu, postgres_cpu(pg) - pg_cpu
        calls = cluster.sql("SELECT count(*) FROM noetl.event WHERE event_type = 'call.done'")[0][0]
        return {"workers": workers, "calls": calls, "seconds": round(elapsed, 2), "per_second": round(calls / elapsed),
                "worker_cpu_ms": round(worker_cpu * 1000 / calls, 3), "postgres_cpu_ms": round(pg_cpu * 1000 / calls, 3)}
    finally:
        cluster.close()


def throughput_runs(pg: dict[str, Any], counts: list[int], repeat: int, home: Path,
                    before: Path | None) -> dict[str, list[dict[str, Any]]]:
    """Every worker count ``repeat`` times; with ``before`` (a source tree) each run is paired with
    one on that code, so both see the same machine load."""
    runs: dict[str, list[dict[str, Any]]] = {"after": [], "before": []}
    for workers in counts:
        for n in range(repeat):
            if before is not None:
                runs["before"].append(throughput(pg, workers, home / f"b{workers}-{n}", code=before))
                print("before", runs["before"][-1], flush=True)
            runs["after"].append(throughput(pg, workers, home / f"t{workers}-{n}"))
            print("after", runs["after"][-1], flush=True)
    return runs


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per worker count: the median run by calls/s (its own CPU figures), and every run's calls/s."""
    out = []
    for workers in sorted({r["workers"] for r in runs}):
        mine = sorted((r for r in runs if r["workers"] == workers), key=lambda r: r["per_second"])
        out.append({**mine[len(mine) // 2], "all": [r["per_second"] for r in mine]})
    return out


def export_revision(ref: str, into: Path) -> Path:
    """The package at git revision ``ref``, extracted into ``into`` (for --compare-with)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "noetl"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


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
        command_bytes = table_bytes(cluster, "noetl.command")
        assert cluster.server is not None
        return {
            "items": items, "seconds": round(elapsed, 2), "per_second": round(items / elapsed),
            "events": events, "event_bytes_per_step": round(event_bytes / items),
            "command_bytes_per_step": round(command_bytes / items),
            # Each command row is written three times (queued, leased, done): until autovacuum catches
            # up the table holds the dead versions too. After VACUUM FULL: the live rows only.
            "command_live_bytes_per_step": round(vacuumed_bytes(cluster, "noetl.command") / items),
            "server_peak_rss_mb": round(peak_rss_mb(cluster.server.pid), 1),
            "worker_peak_rss_mb": [round(peak_rss_mb(p.pid), 1) for p in cluster.workers.values()],
            "explain": explain_lease(cluster, int(execution_id)),
        }
    finally:
        cluster.close()


def table_bytes(cluster: Cluster, table: str) -> int:
    return int(cluster.sql("SELECT pg_total_relation_size(%s::regclass)", table)[0][0])


def vacuumed_bytes(cluster: Cluster, table: str) -> int:
    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        conn.execute(f"VACUUM FULL {table}")
    return table_bytes(cluster, table)


def explain_lease(cluster: Cluster, execution_id: int, queued: int = 1000) -> str:
    """The plan of the workers' lease statement (as in queries.sql) over the command table the large
    loop left behind (every row done), with ``queued`` commands waiting; rolled back afterwards."""
    from noetl.store.postgres.sql import queries

    params = {"owner": "explain", "limit": 32, "lease_seconds": 30, "now": "2030-01-01T00:00:00+00:00"}
    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO noetl.command (command_id, execution_id, step, payload, status, created_at) "
                     "SELECT 'explain-' || n, %s, 'start', '{}', 'queued', now() FROM generate_series(1, %s) AS n",
                     (execution_id, queued))
        conn.execute("ANALYZE noetl.command")
        with conn.transaction(force_rollback=True):
            rows = conn.execute(b"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + queries()["lease_commands"].encode(),
                                params).fetchall()
    return "\n".join(row[0] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per worker count (median)")
    parser.add_argument("--loop", type=int, default=10_000)
    parser.add_argument("--compare-with", default=None, metavar="REF",
                        help="also run the throughput on the code of this git revision (before/after)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "distributed.md"))
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="noetl-bench-"))
    counts = [int(n) for n in args.workers.split(",")]
    before = export_revision(args.compare_with, home / "before") if args.compare_with else None
    with postgres_cluster() as pg:
        runs = throughput_runs(pg, counts, args.repeat, home, before)
        latency = dispatch_latency(pg, home / "latency")
        print(latency, flush=True)
        big = large_loop(pg, home / "large", args.loop)
        print({k: v for k, v in big.items() if k != "explain"}, flush=True)
    results = {"after": medians(runs["after"]), "before": medians(runs["before"]) if before else []}
    write_report(Path(args.out), results, args.compare_with, latency, big, " ".join(sys.argv[1:]))


def throughput_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| workers | calls | seconds | calls/s (median) | every run | worker CPU ms/call | PostgreSQL CPU ms/call |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['calls']} | {r['seconds']} | {r['per_second']} | "
              f"{', '.join(map(str, r['all']))} | {r['worker_cpu_ms']} | {r['postgres_cpu_ms']} |" for r in rows]
    return lines


def write_report(out: Path, results: dict[str, list[dict[str, Any]]], before_ref: str | None,
                 latency: dict[str, Any], big: dict[str, Any], argv: str) -> None:
    lines = ["# Distributed runtime benchmark", "",
             f"Command: `python bench/distributed.py {argv}`".rstrip(), "",
             "Server, workers and PostgreSQL 15 on one 2-core machine (throwaway cluster, fsync off), "
             "shared with other jobs: compare figures measured in the same run.", "",
             "## Throughput (noop tool calls, 20 executions x 250-item parallel loops, concurrency 32/worker)", ""]
    lines += throughput_table(results["after"])
    if results["before"]:
        lines += ["", f"Before (revision `{before_ref}`, runs interleaved with the ones above):", ""]
        lines += throughput_table(results["before"])
    lines += ["", f"## Dispatch latency ({CHAIN_STEPS}-step sequential chain x 10, 2 workers)", "",
              "Decision that queued the command (command.created_at) to a worker's lease (heartbeat_at).", "",
              f"samples {latency['samples']}, p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, "
              f"max {latency['max_ms']} ms", "",
              f"## Large parallel loop ({big['items']} items, max_in_flight 128, 2 workers)", "",
              f"- wall time {big['seconds']} s ({big['per_second']} items/s), {big['events']} events",
              f"- event table (with indexes): {big['event_bytes_per_step']} bytes per step; "
              f"command table: {big['command_bytes_per_step']} bytes per step as left "
              f"({big['command_live_bytes_per_step']} after VACUUM FULL)",
              f"- peak RSS: server {big['server_peak_rss_mb']} MB (including the final status request), "
              f"workers {big['worker_peak_rss_mb']} MB", "",
              "## EXPLAIN of the lease statement after the large loop (1,000 commands queued)", "",
              "```", big["explain"], "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
