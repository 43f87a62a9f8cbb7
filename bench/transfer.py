"""PostgreSQL to PostgreSQL transfer: NoETL's ``kind: transfer`` against a direct psycopg COPY pipe.

python bench/transfer.py [--rows 1000000] [--reps 3] [--chunk-size 50000]

Starts a throwaway PostgreSQL (tests/support/pgcluster.py) and turns durability back on
(``fsync``, ``synchronous_commit``, ``full_page_writes``: the test clusters run without them). Two
databases, ``bench_src`` (a table of ``--rows`` rows: bigint, text, double precision, boolean,
timestamptz, a nullable text with escapes) and ``bench_dst`` (the same columns under other names),
registered as the credentials ``bench_src`` and ``bench_dst`` in a fresh NOETL_HOME. Then,
interleaved, ``--reps`` times each (the target table is truncated before every run), each in its
own Python process so that its peak RSS (``VmHWM``) is its own:

- NoETL: ``noetl.run`` of a one-step playbook whose tool is ``kind: transfer`` (source: the
  table, target: ``bench_dst`` with a ``mapping`` of every column, ``chunk_size``), timed around
  ``noetl.run`` (loading the playbook and the local store included);
- pipe: ``COPY (SELECT ...) TO STDOUT`` on one connection written block by block into
  ``COPY ... FROM STDIN`` on another, in one transaction: what a hand-written psycopg script does.

A last NoETL run with a tenth of the rows shows whether peak memory grows with the row count.
Prints Markdown: seconds and rows/s per run, medians, the ratio, peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.pgcluster import postgres_cluster  # noqa: E402

SOURCE_DDL = ("CREATE TABLE items (id bigint PRIMARY KEY, name text, amount double precision, "
              "active boolean, created_at timestamptz, note text)")
SOURCE_FILL = ("INSERT INTO items SELECT g, 'name-' || g, g * 0.25, g %% 2 = 0, "
               "timestamptz '2024-01-01' + g * interval '1 second', "
               "CASE WHEN g %% 3 = 0 THEN E'tab\\there\\nnewline' END FROM generate_series(1, %s) AS g")
TARGET_DDL = ("CREATE TABLE copied (item_id bigint PRIMARY KEY, label text, amount double precision, "
              "is_active boolean, created timestamptz, note text)")
MAPPING = {"item_id": "id", "label": "name", "amount": "amount", "is_active": "active", "created": "created_at",
           "note": "note"}

PLAYBOOK = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: transfer_bench}}
workflow:
  - step: start
    tool:
      kind: transfer
      source: {{type: postgres, auth: bench_src, query: "SELECT * FROM items"}}
      target: {{type: postgres, auth: bench_dst, table: public.copied, mode: insert, mapping: {mapping}}}
      chunk_size: {chunk_size}
"""

# Each measurement runs in a fresh interpreter: prints {"seconds": ..., "rss_kib": ..., ...}.
NOETL_CHILD = """
import json, sys, time
import noetl
text = sys.stdin.read()
started = time.perf_counter()
doc = noetl.run(text)
seconds = time.perf_counter() - started
hwm = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM'))
print(json.dumps({"seconds": seconds, "rss_kib": hwm, "status": doc["status"], "error": doc["error"],
                  "result": doc["steps"]["start"]["result"]}))
"""

PIPE_CHILD = """
import json, sys, time
import psycopg
src_dsn, dst_dsn = sys.argv[1], sys.argv[2]
started = time.perf_counter()
with psycopg.connect(src_dsn) as src, psycopg.connect(dst_dsn) as dst:
    with src.cursor() as out_cursor, dst.cursor() as in_cursor:
        with out_cursor.copy("COPY (SELECT id, name, amount, active, created_at, note FROM items) TO STDOUT") as out, \\
                in_cursor.copy("COPY copied (item_id, label, amount, is_active, created, note) FROM STDIN") as inp:
            for block in out:
                inp.write(block)
seconds = time.perf_counter() - started
hwm = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM'))
print(json.dumps({"seconds": seconds, "rss_kib": hwm}))
"""


def durable(pg: dict[str, Any]) -> None:
    with psycopg.connect(host=pg["socket_dir"], port=pg["port"], user=pg["superuser"], dbname="postgres",
                         autocommit=True) as admin:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            admin.execute(sql.SQL("ALTER SYSTEM SET {} = on").format(sql.Identifier(name)))
        admin.execute("SELECT pg_reload_conf()")
        for name in ("bench_src", "bench_dst"):
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(pg["user"])))


def settings(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return {name: str(conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0])  # type: ignore[index]
                for name in ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "server_version")}


def dsn_for(pg: dict[str, Any], database: str) -> str:
    return f"host={pg['host']} port={pg['port']} user={pg['user']} password={pg['password']} dbname={database}"


def prepare(pg: dict[str, Any], rows: int) -> None:
    with psycopg.connect(dsn_for(pg, "bench_src"), autocommit=True) as conn:
        conn.execute(SOURCE_DDL)
        conn.execute(SOURCE_FILL, [rows])
        conn.execute("VACUUM ANALYZE items")
    with psycopg.connect(dsn_for(pg, "bench_dst"), autocommit=True) as conn:
        conn.execute(TARGET_DDL)


def register(pg: dict[str, Any]) -> None:
    from noetl.api import open_store
    from noetl.credentials import register_credential

    async def main() -> None:
        store = await open_store()
        try:
            for name in ("bench_src", "bench_dst"):
                data = {**{k: pg[k] for k in ("host", "port", "user", "password")}, "database": name}
                await register_credential(store, {"name": name, "type": "postgres", "data": data})
        finally:
            await store.close()

    asyncio.run(main())


def reset(pg: dict[str, Any]) -> None:
    with psycopg.connect(dsn_for(pg, "bench_dst"), autocommit=True) as conn:
        conn.execute("TRUNCATE copied")
    with psycopg.connect(host=pg["socket_dir"], port=pg["port"], user=pg["superuser"], dbname="postgres",
                         autocommit=True) as admin:
        admin.execute("CHECKPOINT")  # each run starts without the previous run's dirty pages


def copied(pg: dict[str, Any]) -> int:
    with psycopg.connect(dsn_for(pg, "bench_dst")) as conn:
        return int(conn.execute("SELECT count(*) FROM copied").fetchone()[0])  # type: ignore[index]


def child(code: str, *args: str, stdin: str = "") -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True,
                          check=False, env=os.environ.copy(), cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"measurement failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_noetl(pg: dict[str, Any], rows: int, chunk_size: int) -> dict[str, Any]:
    reset(pg)
    text = PLAYBOOK.format(mapping=json.dumps(MAPPING), chunk_size=chunk_size)
    measured = child(NOETL_CHILD, stdin=text)
    if measured["status"] != "completed":
        raise SystemExit(f"NoETL run did not complete: {measured['error']}")
    if copied(pg) != rows or measured["result"]["rows_written"] != rows:
        raise SystemExit(f"NoETL copied {copied(pg)} rows ({measured['result']}), expected {rows}")
    return measured


def run_pipe(pg: dict[str, Any], rows: int) -> dict[str, Any]:
    reset(pg)
    measured = child(PIPE_CHILD, dsn_for(pg, "bench_src"), dsn_for(pg, "bench_dst"))
    if copied(pg) != rows:
        raise SystemExit(f"the pipe copied {copied(pg)} rows, expected {rows}")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=50_000)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"noetl": [], "pipe": []}
    with postgres_cluster() as pg, tempfile.TemporaryDirectory(prefix="noetl-bench-") as home:
        os.environ["NOETL_HOME"] = home
        durable(pg)
        prepare(pg, args.rows)
        register(pg)
        server = settings(dsn_for(pg, "bench_dst"))
        for _ in range(args.reps):
            runs["noetl"].append(run_noetl(pg, args.rows, args.chunk_size))
            runs["pipe"].append(run_pipe(pg, args.rows))
        chunks = runs["noetl"][-1]["result"]["chunks"]
        with psycopg.connect(dsn_for(pg, "bench_src"), autocommit=True) as conn:
            conn.execute("DELETE FROM items WHERE id > %s", [args.rows // 10])
        small = run_noetl(pg, args.rows // 10, args.chunk_size)

    n = args.rows
    median = {name: statistics.median(r["seconds"] for r in values) for name, values in runs.items()}
    print(f"## PostgreSQL → PostgreSQL: {n:,} rows, {args.reps} interleaved runs each\n")
    print(f"Server: PostgreSQL {server['server_version']}, fsync={server['fsync']}, synchronous_commit="
          f"{server['synchronous_commit']}, full_page_writes={server['full_page_writes']}, shared_buffers="
          f"{server['shared_buffers']}; `chunk_size: {args.chunk_size}` ({chunks} chunks).\n")
    print("| what | seconds per run | median s | rows/s | peak RSS (MiB) |")
    print("|---|---|---:|---:|---:|")
    labels = {"noetl": "NoETL `kind: transfer` (noetl.run)", "pipe": "psycopg COPY TO STDOUT → COPY FROM STDIN"}
    for name, label in labels.items():
        per_run = ", ".join(f"{r['seconds']:.2f}" for r in runs[name])
        rss = max(r["rss_kib"] for r in runs[name]) / 1024
        print(f"| {label} | {per_run} | {median[name]:.2f} | {n / median[name]:,.0f} | {rss:.0f} |")
    print(f"| NoETL, {n // 10:,} rows | {small['seconds']:.2f} | {small['seconds']:.2f} | "
          f"{n // 10 / small['seconds']:,.0f} | {small['rss_kib'] / 1024:.0f} |")
    print(f"\nNoETL / pipe throughput ratio = **{median['pipe'] / median['noetl']:.2f}** (target ≥ 0.5)")


if __name__ == "__main__":
    main()
