"""Results of any size on bounded memory: peak RSS of each process for one big result.

Two playbooks, each run on the local runtime (``noetl.run`` in a child process) and on a real
deployment (throwaway PostgreSQL with fsync on, a server and 2 workers):

- ``pg``: a ``postgres`` step over ``generate_series(1, ROWS)`` with four columns, then a step whose
  input reads ``{{ start.rows[0] }}``, ``{{ start.data.rows | length }}`` and ``{{ start.rows[-1] }}``;
- ``py``: a python step returning a list of about 50 MB, then a step reading ``{{ big[0] }}`` and
  ``{{ big | length }}``.

Figures: peak RSS (VmHWM) of the ``noetl.run`` process, or of the server and of each worker, and the
time from submission to completion. ``--compare-with REV`` runs the same on the code of ``REV``
(exported with ``git archive`` and put first on PYTHONPATH), in the same run. Prints Markdown.

    .venv/bin/python bench/big_results.py [--rows 1000000] [--compare-with REV] [--only pg|py]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from results_by_ref import export_tree, peak_rss_mb  # noqa: E402
from results_by_ref import local_run as run_child  # noqa: E402

PG_PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: big_pg, path: bench/big_pg}}
workflow:
  - step: start
    tool:
      kind: postgres
      connection: "{url}"
      query: >-
        SELECT g AS id, md5(g::text) AS h, g * 2 AS twice, now() AS at
        FROM generate_series(1, {rows}) g
    next: {{arcs: [{{step: read}}]}}
  - step: read
    tool:
      kind: python
      input: {{first: "{{{{ start.rows[0] }}}}", count: "{{{{ start.data.rows | length }}}}",
               last: "{{{{ start.rows[-1] }}}}"}}
      code: |
        assert first["id"] == 1 and count == {rows} and last["id"] == {rows}, (first, count, last)
        result = {{"count": count}}
"""

PY_PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: big_py, path: bench/big_py}
workflow:
  - step: big
    tool:
      kind: python
      code: |
        result = [{"i": i, "text": "x" * 90} for i in range(500_000)]
    next: {arcs: [{step: read}]}
  - step: read
    tool:
      kind: python
      input: {first: "{{ big[0] }}", count: "{{ big | length }}"}
      code: |
        assert first["i"] == 0 and count == 500_000, (first, count)
        result = {"count": count}
"""


def playbooks(pg_url: str, rows: int) -> dict[str, str]:
    return {"pg": PG_PLAYBOOK.format(url=pg_url, rows=rows), "py": PY_PLAYBOOK}


# local -------------------------------------------------------------------------------------
def local_child(text: str) -> None:
    """Runs inside the measured process: one execution, then its figures as JSON on stdout."""
    import noetl

    began = time.perf_counter()
    doc = noetl.run(text)
    seconds = time.perf_counter() - began
    figures: dict[str, Any] = {"seconds": round(seconds, 2), "peak_rss_mb": {"noetl run": peak_rss_mb("self")}}
    if doc["status"] != "completed":
        figures["failed"] = _message(doc.get("error"))
    print(json.dumps(figures))


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
        path = cluster.register(text)["path"]
        began = time.perf_counter()
        doc = cluster.wait(cluster.execute(path), timeout=1800)
        seconds = time.perf_counter() - began
        assert cluster.server is not None
        rss = {"server": peak_rss_mb(cluster.server.pid),
               **{name: peak_rss_mb(proc.pid) for name, proc in cluster.workers.items()}}
        figures: dict[str, Any] = {"seconds": round(seconds, 2), "peak_rss_mb": rss}
        if doc["status"] != "completed":
            figures["failed"] = _message(doc.get("error"))
        return figures
    finally:
        cluster.close()


def _message(error: Any) -> str:
    return str(error.get("message", error) if isinstance(error, dict) else error)[:300]


def revision(ref: str = "HEAD") -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True, text=True,
                          check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--compare-with", default=None, help="a revision to measure in the same run")
    parser.add_argument("--only", choices=("pg", "py"), default=None)
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--child-local", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_local:
        local_child(sys.stdin.read())
        return
    from support.pgcluster import postgres_cluster

    rows: list[tuple[str, str, str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="noetl-bench-big-") as tmp, postgres_cluster(durable=True) as pg:
        codes: list[tuple[str, Path | None]] = []
        if args.compare_with:
            codes.append((revision(args.compare_with), export_tree(revision(args.compare_with), Path(tmp) / "base")))
        codes.append((revision() + (" (+ changes)" if _dirty() else ""), None))
        for name, text in playbooks(pg["url"], args.rows).items():
            if args.only and name != args.only:
                continue
            for label, code in codes:
                if not args.skip_local:
                    rows.append((name, "local", label, run_child(text, code, script=__file__)))
                    print(f"# {rows[-1]}", file=sys.stderr, flush=True)
                rows.append((name, "distributed", label,
                             distributed_run(pg, text, Path(tmp) / f"d-{name}-{len(rows)}", code)))
                print(f"# {rows[-1]}", file=sys.stderr, flush=True)
    print(f"load average before/after: {_load_before} / {os.getloadavg()}\n")
    print("| playbook | runtime | code | seconds | peak RSS (MB) | outcome |")
    print("|---|---|---|---|---|---|")
    for name, runtime, label, figures in rows:
        rss = ", ".join(f"{k} {v}" for k, v in figures["peak_rss_mb"].items())
        print(f"| {name} | {runtime} | {label} | {figures['seconds']} | {rss} | {figures.get('failed', 'completed')} |")


def _dirty() -> bool:
    return bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "noetl"], capture_output=True,
                               text=True, check=True).stdout.strip())


_load_before = os.getloadavg()

if __name__ == "__main__":
    main()
