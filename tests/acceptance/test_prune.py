"""`noetl prune --older-than AGE`: finished executions and their per-execution DuckDB files go,
running ones stay."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

DUCKDB = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: prune_duckdb}
workflow:
  - step: start
    tool: {kind: duckdb, command: "CREATE TABLE t AS SELECT 42 AS answer; SELECT answer FROM t"}
"""


def test_prune_removes_old_executions_and_their_duckdb_files(noetl: Any, noetl_home: Path, tmp_path: Path) -> None:
    playbook = tmp_path / "duckdb.yaml"
    playbook.write_text(DUCKDB)
    run = noetl("run", str(playbook), "--json")
    assert run.code == 0, run.stderr
    execution_id = run.json()["execution_id"]
    database = noetl_home / "data" / "duckdb" / f"{execution_id}.duckdb"
    assert database.exists()
    # A running execution's file is kept however old it is.
    running = database.with_name("424242.duckdb")
    running.write_bytes(b"")
    assert noetl("prune", "--older-than", "1h").json() == {"results": 0, "duckdb_files": 0, "executions": 0}

    # The run ended more than the 2 seconds of --older-than ago (the commands since then count too).
    ended = datetime.fromisoformat(run.json()["ended_at"]).timestamp()
    time.sleep(max(0.0, ended + 2.1 - time.time()))
    old = time.time() - 3600
    os.utime(database, (old, old))
    os.utime(running, (old, old))
    _mark_running(noetl_home, "424242")
    assert noetl("prune", "--older-than", "2").json() == {"results": 0, "duckdb_files": 1, "executions": 1}
    assert not database.exists() and running.exists()
    gone = noetl("status", execution_id)
    assert gone.code == 2 and f"execution {execution_id} not found" in gone.stderr
    assert [r["execution_id"] for r in noetl("executions", "--json").json()] == ["424242"]


def _mark_running(home: Path, execution_id: str) -> None:
    """An execution row whose run has not ended (as a run in progress leaves it)."""
    import sqlite3

    with sqlite3.connect(home / "noetl.db") as conn:
        conn.execute("INSERT INTO execution (execution_id, path, status, started_at) VALUES (?, 'x', 'running', ?)",
                     (execution_id, "2026-01-01T00:00:00+00:00"))
