"""Cursor loops on the local runtime, through the `noetl` command and a real PostgreSQL table."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from acceptance.test_data_tools import register_pg, write

CURSOR = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: cursor_drain}}
workload: {{table: {table}, rows: {rows}}}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_local
      command: |
        CREATE TABLE {{{{ table }}}} (id int PRIMARY KEY, state text NOT NULL DEFAULT 'pending',
                                      processed int NOT NULL DEFAULT 0, frame int);
        INSERT INTO {{{{ table }}}} (id) SELECT g FROM generate_series(1, {{{{ rows }}}}) AS g;
    next: {{arcs: [{{step: drain}}]}}
  - step: drain
    loop:
      cursor:
        kind: postgres
        auth: pg_local
        claim: |
          UPDATE {{{{ table }}}} SET state = 'claimed'
          WHERE id IN (SELECT id FROM {{{{ table }}}} WHERE state = 'pending' ORDER BY id
                       LIMIT {{{{ __frame_max_rows }}}} FOR UPDATE SKIP LOCKED)
          RETURNING id{returning}
      iterator: job
      spec:
        mode: cursor
        max_in_flight: 3
        frame: {{max_rows: {max_rows}, row_concurrency: 4, process: {process}}}
    tool:
      kind: postgres
      auth: pg_local
      command: {command}
    set: {{ctx.seen: "{{{{ (ctx.seen | default(0)) + 1 }}}}"}}
    next:
      arcs:
        - step: summary
          when: "{{{{ event.name == 'loop.done' }}}}"
  - step: summary
    tool:
      kind: postgres
      auth: pg_local
      query: "SELECT count(*) FILTER (WHERE state = 'done') AS done, min(processed) AS least,
              max(processed) AS most, {{{{ ctx.seen }}}} AS seen FROM {{{{ table }}}}"
"""

ROW_COMMAND = ('"UPDATE {{ table }} SET state = \'done\', processed = processed + 1, frame = {{ iter._frame }} '
               'WHERE id = {{ iter.job.id }} RETURNING id"')
FRAME_COMMAND = ('"UPDATE {{ table }} SET state = \'done\', processed = processed + 1, frame = {{ iter._frame }} '
                 'WHERE id = ANY(ARRAY{{ iter.job | map(attribute=\'id\') | list }}::int[]) RETURNING id"')


def playbook(table: str, rows: int, *, process: str = "row", max_rows: int = 7, returning: str = "") -> str:
    command = ROW_COMMAND if process == "row" else FRAME_COMMAND
    return CURSOR.format(table=table, rows=rows, process=process, max_rows=max_rows, command=command,
                         returning=returning)


def table_name() -> str:
    return f"public.jobs_{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("process", ["row", "frame"])
def test_cursor_loop_drains_the_table_once(noetl: Any, tmp_path: Path, pg_cluster: dict[str, Any],
                                           process: str) -> None:
    register_pg(noetl, tmp_path, pg_cluster)
    table, rows = table_name(), 120
    result = noetl("run", write(tmp_path, playbook(table, rows, process=process)), "--json")
    assert result.code == 0, result.stdout + result.stderr
    doc = result.json()
    assert doc["status"] == "completed", doc["error"]
    iterations = rows if process == "row" else -(-rows // 7)  # one per frame of 7 rows
    # The step's `set` ran once per successful iteration.
    assert doc["steps"]["summary"]["result"]["rows"] == [{"done": rows, "least": 1, "most": 1, "seen": iterations}]
    aggregate = doc["steps"]["drain"]["result"]
    assert aggregate["stats"] == {"total": iterations, "success": iterations, "failed": 0}
    assert len(aggregate["results"]) == iterations
    with psycopg.connect(pg_cluster["url"]) as conn:
        frames = conn.execute(f"SELECT frame, count(*) FROM {table} GROUP BY frame").fetchall()
    assert sum(n for _, n in frames) == rows and all(n <= 7 for _, n in frames)
    events = noetl("events", doc["execution_id"], "--json").json()
    assert [e["event_type"] for e in events].count("loop.done") == 1
    assert max(e["meta"].get("loop_index", 0) for e in events if e["event_type"] == "call.done") >= 1


def test_frames_bigger_than_a_result_stays_inline(noetl: Any, tmp_path: Path, pg_cluster: dict[str, Any]) -> None:
    """A claim's rows are the frame however much they weigh (100 rows of 1 kB here)."""
    register_pg(noetl, tmp_path, pg_cluster)
    table = table_name()
    text = playbook(table, 250, max_rows=100, returning=", repeat('x', 1000) AS pad")
    result = noetl("run", write(tmp_path, text), "--json")
    assert result.code == 0, result.stdout + result.stderr
    doc = result.json()
    assert doc["status"] == "completed", doc["error"]
    assert doc["steps"]["summary"]["result"]["rows"] == [{"done": 250, "least": 1, "most": 1, "seen": 250}]


BAD_LOOP = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: bad_cursor}}
workflow:
  - step: start
    loop:
{loop}
    tool: {{kind: noop}}
"""


@pytest.mark.parametrize(("loop", "line", "message"), [
    ("      cursor: {kind: postgres, auth: pg}\n      spec: {mode: cursor}", 7, "needs `cursor.claim`"),
    ("      iterator: x\n      spec: {mode: cursor}", 8, "`spec.mode: cursor` needs `loop.cursor`"),
    ("      cursor: {kind: mysql, auth: pg, claim: 'UPDATE t RETURNING id'}", 7, "unknown cursor kind 'mysql'"),
    ("      cursor: {claim: 'UPDATE t RETURNING id'}", 7, "needs `auth`"),
    ("      cursor: {auth: pg, claim: 'UPDATE t RETURNING id'}\n      spec: {mode: parallel}", 8,
     "runs with `spec.mode: cursor`"),
    ("      cursor: {auth: pg, claim: 'UPDATE t RETURNING id'}\n      spec: {frame: {process: rows}}", 8,
     "`spec.frame.process` must be row or frame"),
    ("      cursor: {auth: pg, claim: 'UPDATE t RETURNING id'}\n      spec: {frame: {max_rows: 0}}", 8,
     "`spec.frame.max_rows` must be a positive integer"),
    ("      iterator: x", 6, "`loop` needs `in:`"),
])
def test_bad_cursor_loops_are_found_before_anything_runs(noetl: Any, tmp_path: Path, loop: str, line: int,
                                                         message: str) -> None:
    path = write(tmp_path, BAD_LOOP.format(loop=loop))
    result = noetl("validate", path)
    assert result.code == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert message in output
    assert f"{path}:{line}:" in output
    assert "Traceback" not in output
    run = noetl("run", path)
    assert run.code == 2 and message in run.stdout + run.stderr


def test_a_cursor_loop_past_inline_max_items_has_its_results_by_reference(noetl: Any, tmp_path: Path,
                                                                          pg_cluster: dict[str, Any]) -> None:
    register_pg(noetl, tmp_path, pg_cluster)
    table, rows = table_name(), 120
    text = playbook(table, rows).replace("    set: {ctx.seen:", "    output: {inline_max_items: 20}\n    set: {ctx.seen:")
    result = noetl("run", write(tmp_path, text), "--json")
    assert result.code == 0, result.stdout + result.stderr
    doc = result.json()
    assert doc["status"] == "completed", doc["error"]
    assert doc["steps"]["summary"]["result"]["rows"] == [{"done": rows, "least": 1, "most": 1, "seen": rows}]
    aggregate = doc["steps"]["drain"]["result"]
    assert aggregate["stats"] == {"total": rows, "success": rows, "failed": 0}
    ref = aggregate["results"]["_ref"]
    assert ref["uri"].endswith("/drain?frames") and ref["count"] == rows
    # Read back across the frames, in frame order: every row's result once.
    whole = noetl("result", doc["execution_id"], "drain")
    assert whole.code == 0, whole.stderr
    items = whole.json()["results"]
    assert len(items) == rows
    ids = sorted(row["id"] for item in items for row in item["rows"])
    assert ids == list(range(1, rows + 1))
    last = noetl("result", doc["execution_id"], "drain", "--index", "-1")
    assert last.code == 0 and last.json() == items[-1]
