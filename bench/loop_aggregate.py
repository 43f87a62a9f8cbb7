"""A loop of 100,000 tiny results: its aggregate built from references instead of inline.

The playbook: a parallel loop (``max_in_flight: 16``) of ``--items`` python iterations, each
returning ``{"i": i}``, then one step that reads ``{{ loop_step.results[N-1] }}`` and
``{{ loop_step.results | length }}`` and checks both.

Measured on both runtimes, each against the code of ``--base`` (a commit; default: the commit before
loop aggregates by reference landed) exported with ``git archive`` and put first on PYTHONPATH, in
the same run (the helpers of ``bench/results_by_ref.py``):

- local: ``noetl.run`` in a child process on a fresh ``NOETL_HOME``; peak RSS (VmHWM), wall time,
  bytes written to the event table (sum of the stored column lengths);
- distributed: PostgreSQL, a server and 2 workers; peak RSS of each process, time from submission to
  completion, growth of ``noetl.event_log`` (``pg_total_relation_size``).

Prints Markdown.

    .venv/bin/python bench/loop_aggregate.py [--base COMMIT] [--items 100000] [--skip-distributed]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_by_ref import ROOT, distributed_run, export_tree, local_run, print_figures  # noqa: E402

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: loop_aggregate, path: bench/loop_aggregate}}
workload: {{n: {items}}}
workflow:
  - step: loop_step
    loop: {{in: "{{{{ range(workload.n) | list }}}}", iterator: i, spec: {{mode: parallel, max_in_flight: 16}}}}
    tool:
      kind: python
      input: {{i: "{{{{ iter.i }}}}"}}
      code: |
        result = {{"i": i}}
    next: {{arcs: [{{step: read}}]}}
  - step: read
    tool:
      kind: python
      input: {{last: "{{{{ loop_step.results[{last}] }}}}", count: "{{{{ loop_step.results | length }}}}"}}
      code: |
        assert last == {{"i": {last}}}, last
        assert count == {items}, count
        result = {{"count": count}}
"""


def playbook(items: int) -> str:
    return PLAYBOOK.format(items=items, last=items - 1)


def _before_feature() -> str:
    first = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%H", "--grep=^Loop aggregates by reference"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return f"{first}~1" if first else "HEAD"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default=None, help="commit to compare with (default: the commit before loop "
                        "aggregates by reference)")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--skip-distributed", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from support.pgcluster import postgres_cluster

    text = playbook(args.items)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base or _before_feature()],
                            capture_output=True, text=True, check=True).stdout.strip()
    rows: list[tuple[str, str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="noetl-bench-base-") as tmp:
        base_code = export_tree(commit, Path(tmp) / "code")
        rows.append(("local", f"before ({commit})", local_run(text, base_code)))
        rows.append(("local", "by reference", local_run(text, None)))
        if not args.skip_distributed:
            with postgres_cluster() as pg:
                rows.append(("distributed", f"before ({commit})",
                             distributed_run(pg, text, Path(tmp) / "d-base", base_code)))
                rows.append(("distributed", "by reference", distributed_run(pg, text, Path(tmp) / "d-ref", None)))
    print(f"{args.items} iterations returning {{\"i\": i}}, then one step reading results[{args.items - 1}] "
          "and results | length\n")
    print_figures(rows)


if __name__ == "__main__":
    main()
