"""PostgreSQL sink throughput: NoETL's postgres sink against a direct psycopg ``COPY``, in one run.

python bench/pg_sink.py [--rows 100000] [--reps 3]

Starts a throwaway PostgreSQL (tests/support/pgcluster.py) and registers it as the credential
``bench_pg`` in a fresh NOETL_HOME. Then, interleaved, ``--reps`` times each (the table is
truncated before every run):

- NoETL: one step whose pipeline is a python task producing the rows and a ``sink`` task
  (``tool: postgres``, ``mode: insert``) writing them into ``bench_rows``;
- NoETL, rows only: the same playbook with a ``noop`` task in place of the sink, so that the
  time of everything but the sink can be subtracted;
- COPY: the same rows written with psycopg's ``cursor.copy`` / ``write_row`` in one transaction.

Prints Markdown: rows/s per run, medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.pgcluster import postgres_cluster  # noqa: E402

TABLE = "bench_rows"
DDL = (
    f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, name text, amount double precision, "
    "active boolean, created_at timestamptz)"
)
ROW_CODE = (
    "result = [{'id': i, 'name': f'name-{i}', 'amount': i * 0.25, 'active': i % 2 == 0, "
    "'created_at': f'2024-01-{i % 28 + 1:02d}T12:00:00+00:00'} for i in range(n)]"
)
SINK_TASK = f"""
      - name: store
        kind: sink
        tool: postgres
        auth: bench_pg
        table: public.{TABLE}
        mode: insert"""
# Same shape without writing: a last task with a small result, so the rows are not recorded either.
NOOP_TASK = """
      - name: store
        kind: noop"""


def playbook(rows: int, sink: bool) -> str:
    return f"""apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: pg_sink_bench}}
workflow:
  - step: start
    tool:
      - name: make_rows
        kind: python
        input: {{n: {rows}}}
        code: {ROW_CODE!r}{SINK_TASK if sink else NOOP_TASK}
"""


def make_rows(n: int) -> list[dict[str, Any]]:
    namespace: dict[str, Any] = {"n": n}
    exec(ROW_CODE, namespace)
    return namespace["result"]


def register(pg: dict[str, Any]) -> None:
    from noetl.api import open_store
    from noetl.credentials import register_credential

    async def main() -> None:
        store = await open_store()
        try:
            data = {k: pg[k] for k in ("host", "port", "user", "password", "database")}
            await register_credential(store, {"name": "bench_pg", "type": "postgres", "data": data})
        finally:
            await store.close()

    asyncio.run(main())


def reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLE}")


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as connection:
        return connection.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]  # type: ignore[index]


def run_noetl(dsn: str, rows: int, sink: bool) -> float:
    import noetl

    reset(dsn)
    started = time.perf_counter()
    doc = noetl.run(playbook(rows, sink))
    elapsed = time.perf_counter() - started
    if doc.get("status") != "completed":
        raise SystemExit(f"NoETL run did not complete: {doc.get('status')} {doc.get('error')}")
    if sink and count(dsn) != rows:
        raise SystemExit(f"the sink wrote {count(dsn)} rows, expected {rows}")
    return elapsed


def run_copy(dsn: str, rows: list[dict[str, Any]]) -> float:
    reset(dsn)
    columns = list(rows[0])
    started = time.perf_counter()
    statement = f"COPY {TABLE} ({', '.join(columns)}) FROM STDIN"
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])
    elapsed = time.perf_counter() - started
    if count(dsn) != len(rows):
        raise SystemExit("COPY wrote the wrong number of rows")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    times: dict[str, list[float]] = {"sink": [], "rows_only": [], "copy": []}
    with postgres_cluster() as pg, tempfile.TemporaryDirectory(prefix="noetl-bench-") as home:
        os.environ["NOETL_HOME"] = home
        dsn = pg["dsn"]
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(DDL)
        register(pg)
        rows = make_rows(args.rows)
        run_noetl(dsn, 1000, True)  # warm up imports and the connection pool code
        for _ in range(args.reps):
            times["sink"].append(run_noetl(dsn, args.rows, True))
            times["rows_only"].append(run_noetl(dsn, args.rows, False))
            times["copy"].append(run_copy(dsn, rows))

    n = args.rows
    med = {name: statistics.median(values) for name, values in times.items()}
    sink_only = med["sink"] - med["rows_only"]
    print(f"## PostgreSQL: {n:,} rows, {args.reps} interleaved runs each\n")
    print("| what | seconds per run | median s | rows/s |")
    print("|---|---|---:|---:|")
    labels = {
        "sink": "NoETL run: python rows + postgres sink",
        "rows_only": "NoETL run: python rows only",
        "copy": "psycopg COPY (write_row)",
    }
    for name, label in labels.items():
        per_run = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"| {label} | {per_run} | {med[name]:.2f} | {n / med[name]:,.0f} |")
    print(f"| NoETL sink alone (difference of medians) | | {sink_only:.2f} | {n / sink_only:,.0f} |")
    print(
        f"\nNoETL end to end / COPY = **{med['copy'] / med['sink']:.2f}**; "
        f"sink alone / COPY = **{med['copy'] / sink_only:.2f}**"
    )


if __name__ == "__main__":
    main()
