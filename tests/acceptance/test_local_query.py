"""`noetl query` on the local store opens it read-only: no writes, no files created elsewhere;
`--write` is the way to change it."""

from __future__ import annotations

from pathlib import Path

HELLO = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: q, path: t/q}
workflow:
  - step: start
    tool: {kind: noop}
"""


def test_local_query_reads_and_only_writes_when_asked(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = tmp_path / "q.yaml"
    playbook.write_text(HELLO)
    assert noetl("run", str(playbook)).code == 0
    counted = noetl("query", "SELECT count(*) AS n FROM noetl.event", "--format", "json")
    assert counted.code == 0 and counted.json()[0]["n"] > 0
    outside = tmp_path / "copy.db"
    for sql in (f"VACUUM INTO '{outside}'", f"ATTACH DATABASE '{outside}' AS other", "DELETE FROM noetl.event",
                "PRAGMA journal_mode = DELETE", "CREATE TABLE t (x)"):
        result = noetl("query", sql)
        assert result.code == 2, (sql, result.stderr)
        assert "read-only" in result.stderr and "--write" in result.stderr, result.stderr
    assert not outside.exists()
    assert noetl("query", "PRAGMA table_info(event)").code == 0
    deleted = noetl("query", "DELETE FROM noetl.event", "--write")
    assert deleted.code == 0, deleted.stderr
    assert noetl("query", "SELECT count(*) AS n FROM noetl.event", "--format", "json").json()[0]["n"] == 0


def test_the_guides_event_columns_on_the_local_store(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = tmp_path / "p.yaml"
    playbook.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: p}\n"
                        "workflow:\n  - step: start\n    tool: {kind: noop, result: {n: 1}}\n")
    run = noetl("run", str(playbook), "--json")
    assert run.code == 0
    execution_id = run.json()["execution_id"]
    flow = noetl("query", f"SELECT id, node_name, status, data, error, created_at FROM noetl.event "
                          f"WHERE execution_id = '{execution_id}' ORDER BY created_at ASC", "--format", "json")
    assert flow.code == 0, flow.stderr
    rows = flow.json()
    assert [row["id"] for row in rows] == list(range(1, len(rows) + 1))
    assert {"n": 1} in [row["data"] for row in rows if row["node_name"] == "start"]
    by_name = noetl("query", "SELECT DISTINCT playbook_name, playbook_path FROM noetl.event "
                             f"WHERE execution_id = '{execution_id}'", "--format", "json")
    assert by_name.code == 0, by_name.stderr
    assert by_name.json() == [{"playbook_name": "p", "playbook_path": "p"}]
    nested = tmp_path / "nested.yaml"
    nested.write_text(playbook.read_text().replace("metadata: {name: p}",
                                                   "metadata: {name: p, path: batch_execution/multi_playbook_batch}"))
    assert noetl("run", str(nested)).code == 0
    guide = noetl("query", "SELECT count(*) AS n FROM noetl.event WHERE playbook_name = 'multi_playbook_batch'",
                  "--format", "json")
    assert guide.code == 0 and guide.json()[0]["n"] > 0


def test_an_empty_query_is_an_error(noetl) -> None:  # type: ignore[no-untyped-def]
    result = noetl("query", "  ")
    assert result.code == 2 and result.stderr.strip() == 'error: no SQL statement given (noetl query "SELECT ...")'
