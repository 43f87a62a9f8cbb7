"""Benchmarks of the distributed runtime: server + workers + PostgreSQL on this machine.

    python bench/distributed.py [--workers 1,2,4] [--repeat 3] [--loop 10000] [--compare-with REF]
                                [--chains 40 --chain-steps 50] [--keep large,...]
                                [--out bench/results/distributed.md]

Starts a throwaway PostgreSQL (tests/support/pgcluster.py), a server and N worker processes, and
measures:

- throughput: trivial (noop) tool calls per second end to end, from submission to the last
  execution's completion, for each worker count (20 executions x 250-item parallel loops), the
  median of ``--repeat`` runs, with the CPU time each call cost in the workers and in PostgreSQL;
  with ``--compare-with REF`` the same runs, interleaved (which goes first alternates), on the code of git revision REF (servers and
  workers started from an export of it), so a noisy machine affects both alike;
- chain throughput: workflow steps per second end to end for ``--chains`` concurrent executions, each
  a sequential chain of ``--chain-steps`` steps alternating ``noop`` and a trivial ``python`` step
  (one command in flight per execution, so every step's report is decided in a transaction of its
  own), submission of all to completion of the last, median of ``--repeat`` runs per worker count, with the CPU per step in workers and PostgreSQL
  (run right after the loop throughput runs of the same worker count);
- dispatch latency: for a chain of sequential steps, the time from the decision that queued a
  command (command.created_at) to a worker leasing it (command.heartbeat_at at lease time);
- a large parallel loop: wall time, peak RSS of the server and workers (the server also answers the
  final status request), event-table bytes per step;
- EXPLAIN (ANALYZE, BUFFERS) of the lease query over the table the large loop left, with a queue.

``--keep`` names sections not to measure (throughput, chains, latency, large: the large loop and its
EXPLAIN); their text is copied as it is from the existing ``--out`` file, so a long recorded run
(``--loop 100000``) survives re-measuring the other sections.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
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
sys.path.insert(0, str(ROOT / "bench"))

from gen import mixed_chain  # noqa: E402
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


def wait_all(cluster: Cluster, timeout: float = 3600) -> float:
    """Poll the execution rows (cheap, on one connection), not the status documents; return when the
    last one ended (its ended_at, as a time.time() value: the poll's 50 ms would add up to 50 ms)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM noetl.execution WHERE status = 'running'").fetchone()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError("executions still running")
            time.sleep(0.05)
    assert cluster.sql("SELECT count(*) FROM noetl.execution WHERE status <> 'completed'")[0][0] == 0
    return float(cluster.sql("SELECT EXTRACT(EPOCH FROM max(ended_at)) FROM noetl.execution")[0][0])


def start(pg: dict[str, Any], workers: int, home: Path, concurrency: int = 32, code: Path | None = None) -> Cluster:
    """Server and workers on a new database; ``code``: run them from that source tree instead."""
    cluster = Cluster(create_database(pg), home)
    if code is not None:
        cluster.env["PYTHONPATH"] = str(code)
    cluster.start_server()
    for n in range(workers):
        cluster.start_worker(f"w{n}", concurrency=concurrency)
    wait_listening(cluster, workers)
    return cluster


def wait_listening(cluster: Cluster, workers: int, timeout: float = 120) -> None:
    """Until every worker has connected and LISTENs (it has started: imports, warm-up, pool), so the
    measured window holds no worker start-up. A fixed pause did not: on a loaded machine a worker
    takes 1-3 s to start."""
    deadline = time.monotonic() + timeout
    query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
             "AND query LIKE 'LISTEN %%'")
    while cluster.sql(query)[0][0] < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workers} workers not listening after {timeout} s")
        time.sleep(0.02)
    time.sleep(0.1)  # the listener's first wake-up (it leases once on connecting)


def throughput(pg: dict[str, Any], workers: int, home: Path, executions: int = 20, items: int = 250,
               code: Path | None = None) -> dict[str, Any]:
    cluster = start(pg, workers, home, code=code)
    try:
        cluster.register(LOOP.format(mif=64))
        pids = [p.pid for p in cluster.workers.values()]
        worker_cpu, pg_cpu = sum(map(cpu_seconds, pids)), postgres_cpu(pg)
        began = time.time()
        for _ in range(executions):
            cluster.execute("bench/loop", {"n": items})
        elapsed = wait_all(cluster) - began
        worker_cpu, pg_cpu = sum(map(cpu_seconds, pids)) - worker_cpu, postgres_cpu(pg) - pg_cpu
        calls = cluster.sql("SELECT count(*) FROM noetl.event WHERE event_type = 'call.done'")[0][0]
        return {"workers": workers, "calls": calls, "seconds": round(elapsed, 2), "per_second": round(calls / elapsed),
                "worker_cpu_ms": round(worker_cpu * 1000 / calls, 3), "postgres_cpu_ms": round(pg_cpu * 1000 / calls, 3)}
    finally:
        cluster.close()


def chain_throughput(pg: dict[str, Any], workers: int, home: Path, executions: int, steps: int,
                     code: Path | None = None) -> dict[str, Any]:
    """``executions`` chains of ``steps`` sequential steps (noop, python, noop, ...) submitted at once:
    workflow steps per second from the first submission to the last execution's completion."""
    cluster = start(pg, workers, home, code=code)
    try:
        path = cluster.register(mixed_chain(steps, ["noop", "python"], path="bench/chain_mixed"))["path"]
        pids = [p.pid for p in cluster.workers.values()]
        assert cluster.server is not None
        server = cluster.server.pid
        worker_cpu, pg_cpu, server_cpu = sum(map(cpu_seconds, pids)), postgres_cpu(pg), cpu_seconds(server)
        began = time.time()
        for _ in range(executions):
            cluster.execute(path)
        submitted = time.time() - began  # the run's share spent submitting, one execution after another
        elapsed = wait_all(cluster) - began
        worker_cpu, pg_cpu = sum(map(cpu_seconds, pids)) - worker_cpu, postgres_cpu(pg) - pg_cpu
        server_cpu = cpu_seconds(server) - server_cpu
        done = cluster.sql("SELECT count(*) FROM noetl.event WHERE event_type = 'call.done'")[0][0]
        assert done == executions * steps, (done, executions * steps)
        return {"workers": workers, "calls": done, "seconds": round(elapsed, 2), "per_second": round(done / elapsed),
                "worker_cpu_ms": round(worker_cpu * 1000 / done, 3), "postgres_cpu_ms": round(pg_cpu * 1000 / done, 3),
                "submit_seconds": round(submitted, 2), "server_cpu_ms": round(server_cpu * 1000 / done, 3)}
    finally:
        cluster.close()


def throughput_runs(pg: dict[str, Any], counts: list[int], repeat: int, home: Path, before: Path | None,
                    loops: bool = True, chains: tuple[int, int] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every worker count ``repeat`` times; with ``before`` (a source tree) each loop run is paired
    with one on that code, so both see the same machine load; ``chains`` (executions, steps): a chain
    run after each loop run, so loop items and chain steps are measured under the same load. The
    order within a pair alternates (before first in even repetitions, after first in odd ones), so
    that what the machine still does for the runs before (PostgreSQL's work on their databases, a
    worker exiting) does not always fall on the same side."""
    runs: dict[str, list[dict[str, Any]]] = {"after": [], "before": [], "chains": [], "chains_before": []}
    for workers in counts:
        for n in range(repeat):
            sides: list[tuple[str, Path | None]] = [("before", before), ("after", None)] if before is not None \
                else [("after", None)]
            if n % 2:
                sides.reverse()
            if loops:
                for side, code in sides:
                    runs[side].append(throughput(pg, workers, home / f"{side[0]}{workers}-{n}", code=code))
                    print(side, runs[side][-1], flush=True)
            if chains is not None:
                for side, code in sides:
                    key = "chains" if side == "after" else "chains_before"
                    runs[key].append(chain_throughput(pg, workers, home / f"c{side[0]}{workers}-{n}", *chains,
                                                      code=code))
                    print("chains" if side == "after" else "chains before", runs[key][-1], flush=True)
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
    compile_tree(into / "noetl")
    return into


def compile_tree(package: Path) -> None:
    """Bytecode for every module of ``package``, the working tree's and an export's alike: with
    PYTHONDONTWRITEBYTECODE set, a process compiles every module without bytecode it imports from
    source, and a lazy import (the cipher's module at a worker's first decision) falls inside the
    measured window, on one side only when only one tree was compiled."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, stdout=subprocess.DEVNULL)


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
        began = time.time()
        execution_id = cluster.execute("bench/loop", {"n": items})
        elapsed = wait_all(cluster) - began
        doc = cluster.status(execution_id)
        assert doc["status"] == "completed" and doc["steps"]["start"]["result"]["stats"]["success"] == items
        events, event_bytes = cluster.sql("SELECT count(*), pg_total_relation_size('noetl.event_log') FROM noetl.event")[0]
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


SECTIONS = ("throughput", "chains", "latency", "large")
TITLES = {"throughput": "loop throughput", "chains": "chain throughput", "latency": "dispatch latency",
          "large": "large loop and EXPLAIN"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per worker count (median)")
    parser.add_argument("--loop", type=int, default=10_000)
    parser.add_argument("--chains", type=int, default=40, help="concurrent executions in the chain throughput")
    parser.add_argument("--chain-steps", type=int, default=50, help="sequential steps in each of those chains")
    parser.add_argument("--compare-with", default=None, metavar="REF",
                        help="also run the loop throughput on the code of this git revision (before/after)")
    parser.add_argument("--keep", default="", metavar="SECTIONS",
                        help=f"sections not to measure, kept from the existing --out file: {', '.join(SECTIONS)}")
    parser.add_argument("--fsync", choices=["on", "off"], default="on",
                        help="PostgreSQL durability: fsync and synchronous_commit on (the default) or off")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "distributed.md"))
    args = parser.parse_args()

    keep = [k for k in args.keep.split(",") if k]
    if unknown := set(keep) - set(SECTIONS):
        parser.error(f"--keep: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    out = Path(args.out)
    kept = kept_sections(out, keep) if keep else {}
    home = Path(tempfile.mkdtemp(prefix="noetl-bench-"))
    counts = [int(n) for n in args.workers.split(",")]
    compile_tree(ROOT / "noetl")
    before = export_revision(args.compare_with, home / "before") if args.compare_with else None
    sections: dict[str, str] = dict(kept)
    with postgres_cluster(durable=args.fsync == "on") as pg:
        if "throughput" not in keep or "chains" not in keep:
            runs = throughput_runs(pg, counts, args.repeat, home, before, loops="throughput" not in keep,
                                   chains=None if "chains" in keep else (args.chains, args.chain_steps))
            if "throughput" not in keep:
                results = {"after": medians(runs["after"]), "before": medians(runs["before"]) if before else []}
                sections["throughput"] = throughput_section(results, args.compare_with)
            if "chains" not in keep:
                sections["chains"] = chains_section(medians(runs["chains"]), args.chains, args.chain_steps,
                                                    after_loops="throughput" not in keep,
                                                    before=medians(runs["chains_before"]),
                                                    before_ref=args.compare_with)
        if "latency" not in keep:
            latency = dispatch_latency(pg, home / "latency")
            print(latency, flush=True)
            sections["latency"] = latency_section(latency)
        if "large" not in keep:
            big = large_loop(pg, home / "large", args.loop)
            print({k: v for k, v in big.items() if k != "explain"}, flush=True)
            sections["large"] = large_section(big)
    measured = [k for k in SECTIONS if k not in keep]
    header = header_lines(out, " ".join(sys.argv[1:]), measured, keep)
    write_report(out, header, sections, fsync=args.fsync)


def throughput_table(rows: list[dict[str, Any]], unit: str = "call") -> list[str]:
    lines = [f"| workers | {unit}s | seconds | {unit}s/s (median) | every run | worker CPU ms/{unit} "
             f"| PostgreSQL CPU ms/{unit} |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['calls']} | {r['seconds']} | {r['per_second']} | "
              f"{', '.join(map(str, r['all']))} | {r['worker_cpu_ms']} | {r['postgres_cpu_ms']} |" for r in rows]
    return lines


def throughput_section(results: dict[str, list[dict[str, Any]]], before_ref: str | None) -> str:
    lines = ["## Throughput (noop tool calls, 20 executions x 250-item parallel loops, concurrency 32/worker)", ""]
    lines += throughput_table(results["after"])
    if results["before"]:
        lines += ["", f"Before (revision `{before_ref}`, runs interleaved with the ones above):", ""]
        lines += throughput_table(results["before"])
    return "\n".join(lines) + "\n"


def chains_section(rows: list[dict[str, Any]], executions: int, steps: int, after_loops: bool,
                   before: list[dict[str, Any]] | None = None, before_ref: str | None = None) -> str:
    lines = [f"## Throughput of workflow steps ({executions} concurrent executions x {steps}-step sequential "
             "chains, noop and python alternating, concurrency 32/worker)", "",
             "An execution has one command in flight at a time: its reports can only share a transaction "
             "with other executions' (group commit). Steps/s from the submission of every execution to the "
             "completion of the last."
             + (" Each run follows a loop run of the same worker count above." if after_loops else ""), ""]
    lines += throughput_table(rows, unit="step")
    if before:
        lines += ["", f"Before (revision `{before_ref}`, runs interleaved with the ones above):", ""]
        lines += throughput_table(before, unit="step")
    return "\n".join(lines) + "\n"


def latency_section(latency: dict[str, Any]) -> str:
    return "\n".join([
        f"## Dispatch latency ({CHAIN_STEPS}-step sequential chain x 10, 2 workers)", "",
        "Decision that queued the command (command.created_at) to a worker's lease (heartbeat_at).", "",
        f"samples {latency['samples']}, p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, "
        f"max {latency['max_ms']} ms"]) + "\n"


def large_section(big: dict[str, Any]) -> str:
    return "\n".join([
        f"## Large parallel loop ({big['items']} items, max_in_flight 128, 2 workers)", "",
        f"- wall time {big['seconds']} s ({big['per_second']} items/s), {big['events']} events",
        f"- event table (with indexes): {big['event_bytes_per_step']} bytes per step; "
        f"command table: {big['command_bytes_per_step']} bytes per step as left "
        f"({big['command_live_bytes_per_step']} after VACUUM FULL)",
        f"- peak RSS: server {big['server_peak_rss_mb']} MB (including the final status request), "
        f"workers {big['worker_peak_rss_mb']} MB", "",
        "## EXPLAIN of the lease statement after the large loop (1,000 commands queued)", "",
        "```", big["explain"], "```"]) + "\n"


def section_of(heading: str) -> str | None:
    for prefix, key in (("## Throughput (noop", "throughput"), ("## Throughput of workflow steps", "chains"),
                        ("## Dispatch latency", "latency"), ("## Large parallel loop", "large"),
                        ("## EXPLAIN", "large")):
        if heading.startswith(prefix):
            return key
    return None


def split_report(text: str) -> tuple[list[str], dict[str, str]]:
    """The header lines (before the first section) and each section's text, verbatim."""
    header: list[str] = []
    sections: dict[str, str] = {}
    current: str | None = None
    in_code = False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            in_code = not in_code
        if line.startswith("## ") and not in_code:
            current = section_of(line) or line.strip()
        if current is None:
            header.append(line.rstrip("\n"))
        else:
            sections[current] = sections.get(current, "") + line
    return header, sections


def kept_sections(out: Path, keep: list[str]) -> dict[str, str]:
    if not out.exists():
        raise SystemExit(f"--keep: {out} does not exist")
    _, sections = split_report(out.read_text(encoding="utf-8"))
    if missing := [k for k in keep if k not in sections]:
        raise SystemExit(f"--keep: no {', '.join(missing)} section in {out}")
    return {k: sections[k].rstrip("\n") + "\n" for k in keep}


def header_lines(out: Path, argv: str, measured: list[str], keep: list[str]) -> list[str]:
    """The command (and date) of this run and, for kept sections, of the earlier runs that measured them."""
    today = datetime.date.today().isoformat()
    command = f"Command ({today}, {revision()}): `python bench/distributed.py {argv.strip()}`"
    if not keep:
        return [command]
    lines = [f"{command}: {', '.join(TITLES[k] for k in measured)}."]
    old_header, _ = split_report(out.read_text(encoding="utf-8"))
    for line in old_header:
        if not line.startswith("Command"):
            continue
        match = re.match(r"(Command[^`]*`[^`]*`)(?:: (.*))?$", line.strip())
        if match is None:
            continue
        head, label = match.group(1), match.group(2) or ""
        sections = [k for k in SECTIONS if k in keep and (not label or TITLES[k] in label)]
        if sections:
            lines.append(f"{head}: {', '.join(TITLES[k] for k in sections)}.")
    return lines


def revision() -> str:
    """The measured code: the git revision of ``noetl/``, marked when it has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown revision"
    return f"revision {head}" + (" with uncommitted changes" if git("status", "--porcelain", "--", "noetl") else "")


def write_report(out: Path, command: list[str], sections: dict[str, str], fsync: str = "on") -> None:
    lines = ["# Distributed runtime benchmark", ""]
    lines += [line + "  " if n < len(command) - 1 else line for n, line in enumerate(command)]
    durability = ("fsync, synchronous_commit and full_page_writes on" if fsync == "on"
                  else "fsync off: a reference figure, not a durable one")
    lines += ["", f"Server, workers and PostgreSQL 15 on one 2-core machine (throwaway cluster, {durability}), "
              "shared with other jobs: compare figures measured in the same run.", ""]
    body = "\n\n".join(sections[k].rstrip("\n") for k in SECTIONS if k in sections)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n" + body + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
