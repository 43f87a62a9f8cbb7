"""Results by reference (issue 13): 100 iterations x 1 MB results through a loop, then a step that
reads one item of each result.

Measured on both runtimes, each against the behaviour before results by reference, in the same run:

- local: ``noetl.run`` in a child process on a fresh ``NOETL_HOME``; peak RSS (VmHWM), wall time,
  bytes written to the event table (sum of the stored column lengths);
- distributed: PostgreSQL, a server and 2 workers; peak RSS of each process, time from submission to
  completion, growth of ``noetl.event`` (``pg_total_relation_size``).

"Before" runs the same playbook on the code of ``--base`` (a commit; default: the commit before results
by reference landed), exported with ``git archive`` into a temporary tree and put first on
PYTHONPATH; ``--base inline`` instead sets ``inline_max_bytes`` huge on this code (every result
inline, as before). Prints Markdown.

    .venv/bin/python bench/results_by_ref.py [--base COMMIT|inline] [--items 100] [--rows 9000]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: results_by_ref, path: bench/results_by_ref}}
workload: {{n: {items}, rows: {rows}}}
workflow:
  - step: start
    loop: {{in: "{{{{ range(workload.n) | list }}}}", iterator: i, spec: {{mode: parallel, max_in_flight: 4}}}}
    tool:
      kind: python
      input: {{i: "{{{{ iter.i }}}}", rows: "{{{{ workload.rows }}}}"}}
      code: |
        result = {{"index": i, "rows": [{{"k": j, "v": "x" * 100}} for j in range(rows)]}}
    output: {{inline_max_bytes: {inline_max}}}
    next: {{arcs: [{{step: read, when: "{{{{ event.name == 'loop.done' }}}}"}}]}}
  - step: read
    tool:
      kind: python
      input: {{picks: "{{{{ start.results | map(attribute='rows.7.k') | list }}}}"}}
      code: |
        assert picks == [7] * len(picks), picks[:3]
        result = {{"read": len(picks)}}
"""
HUGE = 10**12


def playbook(items: int, rows: int, inline_max: int) -> str:
    return PLAYBOOK.format(items=items, rows=rows, inline_max=inline_max)


def peak_rss_mb(pid: int | str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# local -------------------------------------------------------------------------------------
def local_child(text: str) -> None:
    """Runs inside the measured process: one execution, then its figures as JSON on stdout."""
    import noetl

    began = time.perf_counter()
    doc = noetl.run(text)
    seconds = time.perf_counter() - began
    assert doc["status"] == "completed", doc.get("error")
    db = Path(os.environ["NOETL_HOME"]) / "noetl.db"
    with sqlite3.connect(db) as conn:
        event_bytes = conn.execute("SELECT sum(length(event_type) + ifnull(length(node_name), 0) + ifnull(length(status), 0)"
                                   " + ifnull(length(result), 0) + ifnull(length(error), 0) + length(meta)"
                                   " + length(created_at) + 16) FROM event").fetchone()[0]
        blobs = conn.execute("SELECT count(*), ifnull(sum(size), 0) FROM result").fetchone() \
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'result'").fetchone() else (0, 0)
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": peak_rss_mb("self"),
                      "event_mb": round(event_bytes / 1e6, 3), "results": blobs[0],
                      "result_mb": round(blobs[1] / 1e6, 1)}))


def local_run(text: str, code: Path | None, script: str = __file__) -> dict[str, Any]:
    """The figures ``script --child-local`` prints for ``text``, run on ``code`` (default: this tree)."""
    env = {**os.environ}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as home:
        env["NOETL_HOME"] = home
        out = subprocess.run([sys.executable, script, "--child-local"], input=text, capture_output=True,
                             text=True, env=env, check=False, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"local run failed:\n{out.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


# distributed -------------------------------------------------------------------------------
def distributed_run(pg: dict[str, Any], text: str, home: Path, code: Path | None) -> dict[str, Any]:
    from test_distributed_cluster import Cluster, create_database

    cluster = Cluster(create_database(pg), home)
    if code is not None:
        cluster.env["PYTHONPATH"] = str(code)
    try:
        cluster.start_server()
        for name in ("w1", "w2"):
            cluster.start_worker(name, concurrency=4)
        time.sleep(1.0)
        path = cluster.register(text)["path"]
        before = cluster.sql("SELECT pg_total_relation_size('noetl.event_log')")[0][0]
        began = time.perf_counter()
        execution_id = cluster.execute(path)
        doc = cluster.wait(execution_id, timeout=1800)
        seconds = time.perf_counter() - began
        assert doc["status"] == "completed", doc.get("error")
        growth = cluster.sql("SELECT pg_total_relation_size('noetl.event_log')")[0][0] - before
        assert cluster.server is not None
        rss = {"server": peak_rss_mb(cluster.server.pid),
               **{name: peak_rss_mb(proc.pid) for name, proc in cluster.workers.items()}}
        return {"seconds": round(seconds, 2), "event_mb": round(growth / 1e6, 3), "peak_rss_mb": rss}
    finally:
        cluster.close()


# the comparison ----------------------------------------------------------------------------
def export_tree(commit: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "noetl"], capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def _before_feature() -> str:
    first = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%H", "--grep=^Results of any size"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return f"{first}~1"



def print_figures(rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    """The results table: seconds, peak RSS of each process and event table growth per run."""
    print("| runtime | code | seconds | peak RSS (MB) | event table growth (MB) |")
    print("|---|---|---|---|---|")
    for runtime, label, figures in rows:
        rss = figures["peak_rss_mb"]
        rss_text = rss if not isinstance(rss, dict) else ", ".join(f"{k} {v}" for k, v in rss.items())
        print(f"| {runtime} | {label} | {figures['seconds']} | {rss_text} | {figures['event_mb']} |")

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default=None, help="commit to compare with (default: the commit before results "
                        "by reference), or 'inline'")
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--rows", type=int, default=9000, help="rows per result (9000 ~ 1.05 MB of JSON)")
    parser.add_argument("--child-local", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-distributed", action="store_true")
    args = parser.parse_args()
    if args.child_local:
        local_child(sys.stdin.read())
        return
    from support.pgcluster import postgres_cluster

    by_ref = playbook(args.items, args.rows, 64 * 1024)
    with tempfile.TemporaryDirectory(prefix="noetl-bench-base-") as tmp:
        if args.base == "inline":
            base_text, base_code, base_label = playbook(args.items, args.rows, HUGE), None, "inline_max_bytes huge"
        else:
            commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base or _before_feature()],
                                    capture_output=True, text=True, check=True).stdout.strip()
            base_text, base_code, base_label = by_ref, export_tree(commit, Path(tmp)), f"commit {commit}"
        rows: list[tuple[str, str, dict[str, Any]]] = []
        rows.append(("local", base_label, local_run(base_text, base_code)))
        rows.append(("local", "by reference", local_run(by_ref, None)))
        if not args.skip_distributed:
            with postgres_cluster() as pg:
                rows.append(("distributed", base_label, distributed_run(pg, base_text, Path(tmp) / "d-base", base_code)))
                rows.append(("distributed", "by reference", distributed_run(pg, by_ref, Path(tmp) / "d-ref", None)))
    print(f"{args.items} iterations x {args.rows} rows (~{args.rows * 117 / 1e6:.2f} MB of JSON each), "
          "then one step reading rows[7].k of every result\n")
    print_figures(rows)
    print()
    for runtime in ("local", "distributed"):
        pair = [f for r, _, f in rows if r == runtime]
        if len(pair) == 2:
            print(f"- {runtime}: {pair[0]['seconds'] / pair[1]['seconds']:.1f}x faster by reference")


if __name__ == "__main__":
    main()
