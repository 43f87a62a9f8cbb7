"""Seed 002's spellings against a real server (in-process, real PostgreSQL): register-playbook and
v2 events answer in the guide's shapes, executions carry playbook_path, noetl.queue has the guide's
columns, and the guide's Python entry points import and work."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from test_distributed_cluster import create_database

from noetl.errors import PlaybookError
from noetl.server.app import create_app
from noetl.server.state import ServerConfig

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: weather_loop_v2, path: examples/weather_loop_v2}
workflow:
  - step: start
    tool: {kind: noop}
    next: [{step: end}]
  - step: end
    tool: {kind: noop}
"""
QUEUE_COLUMNS = ["queue_id", "execution_id", "step", "tool_kind", "status", "attempt", "created_at", "priority",
                 "assigned_worker_id", "started_at", "completed_at"]


@pytest.fixture
def url(pg_cluster: dict[str, Any]) -> str:
    return create_database(pg_cluster)


def test_seed_002_rest_spellings_and_queue_view(url: str) -> None:
    async def main() -> None:
        app = create_app(ServerConfig(database_url=url, reap_interval=0.05))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://noetl.test") as client:
            registered = await client.post("/api/v2/engine/register-playbook", json={"playbook_yaml": PLAYBOOK})
            assert registered.status_code == 200, registered.text
            assert {k: registered.json()[k] for k in ("status", "name", "path")} == {
                "status": "registered", "name": "weather_loop_v2", "path": "examples/weather_loop_v2"}
            started = await client.post("/api/v2/events", json={"name": "workflow.start",
                                                                 "path": "examples/weather_loop_v2", "payload": {}})
            assert started.status_code == 200, started.text
            body = started.json()
            assert body["status"] == "processed" and body["commands_generated"] == 1
            assert isinstance(body["execution_id"], str)
            rows = (await client.get("/api/executions")).json()
            assert rows[0]["playbook_path"] == "examples/weather_loop_v2"
            assert rows[0]["execution_id"] == body["execution_id"]
        with psycopg.connect(url) as conn:
            cursor = conn.execute("SELECT " + ", ".join(QUEUE_COLUMNS) + " FROM noetl.queue "
                                  "WHERE execution_id = %s ORDER BY queue_id", (int(body["execution_id"]),))
            queued = cursor.fetchall()
        assert [(row[2], row[3], row[4], row[7]) for row in queued] == [("start", "noop", "queued", 0)]

    asyncio.run(main())


FAILING = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: multi_playbook_batch, path: examples/multi_playbook_batch}
workflow:
  - step: start
    tool: {kind: noop}
    next: [{step: boom}]
  - step: boom
    tool: {kind: python, code: "raise ValueError('batch failed')"}
"""


def test_seed_001_event_queries_run_as_written(url: str) -> None:
    """The guide's SQL over noetl.event: `id`, `data`, `playbook_name`, ordered by `created_at`."""
    from noetl.api import run_playbook

    doc = run_playbook(FAILING, store_url=url)  # the local runtime, on this PostgreSQL store
    assert doc["status"] == "failed"
    execution_id = doc["execution_id"]
    with psycopg.connect(url) as conn:
        flow = conn.execute("SELECT id, node_name, status, data, error, created_at FROM noetl.event "
                            f"WHERE execution_id = {execution_id} ORDER BY created_at ASC").fetchall()
        by_name = conn.execute("SELECT execution_id, node_name, status, error, created_at FROM noetl.event "
                               "WHERE playbook_name = 'multi_playbook_batch' ORDER BY created_at DESC").fetchall()
        tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'noetl'")}
    assert [row[0] for row in flow] == list(range(1, len(flow) + 1))  # created_at orders as the log does
    assert len({row[5] for row in flow}) == len(flow)  # events written together have distinct times
    assert {"status": "ok"} in [row[3] for row in flow if row[1] == "start"]  # data: the event's result
    failed = [row for row in by_name if row[2] == "failed"]
    assert {row[1] for row in failed} >= {"boom"} and "batch failed" in str(failed)
    assert len(by_name) == len(flow) and {row[0] for row in by_name} == {int(execution_id)}
    assert {"event", "event_log"} <= tables


def test_seed_002_python_entry_points(tmp_path: Path) -> None:
    from noetl.core.dsl.v2.migration import migrate_v1_to_v2
    from noetl.core.dsl.v2.parser import validate_playbook_file
    from noetl.server.api.events_v2 import router

    good = tmp_path / "weather_loop_v2.yaml"
    good.write_text(PLAYBOOK)
    assert validate_playbook_file(good).path == "examples/weather_loop_v2"
    bad = tmp_path / "bad.yaml"
    bad.write_text(PLAYBOOK.replace("kind: noop}\n    next", "kind: nope}\n    next"))
    with pytest.raises(PlaybookError, match="bad.yaml:"):
        validate_playbook_file(bad)
    v1 = "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: old, path: t/old}\nworkflow:\n" \
         "  - step: start\n    type: python\n    code: 'def main(): return 1'\n"
    assert "kind: python" in migrate_v1_to_v2(v1)
    assert router.prefix == "/api"
    shown = subprocess.run([sys.executable, "-m", "noetl.server.app", "--help"], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0 and "--port" in shown.stdout
