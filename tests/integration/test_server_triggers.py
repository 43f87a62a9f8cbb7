"""Completion triggers through the real server and a real worker (throwaway PostgreSQL): a
trigger fires once when an execution of its path ends with its status, and not otherwise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from test_distributed_cluster import create_database

from noetl.runtime.worker import Worker, WorkerOptions
from noetl.server.app import create_app
from noetl.server.state import ServerConfig
from noetl.store.base import ExecutionRecord
from noetl.store.postgres import PostgresStore

SOURCE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: source, path: tests/source}
workload: {fail: false}
workflow:
  - step: start
    tool:
      kind: python
      input: {fail: "{{ workload.fail }}"}
      code: |
        if fail:
            raise ValueError("asked to fail")
        result = {"ok": True}
"""
TARGET = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: NAME, path: tests/NAME}
workflow:
  - step: start
    tool: {kind: noop}
"""


@pytest.fixture
def url(pg_cluster: dict[str, Any]) -> str:
    return create_database(pg_cluster)


# Waits are bounded by a deadline, not a number of polls: on a loaded machine each poll's query takes
# longer, and the worker and the trigger poller get less of the CPU.
WAIT_SECONDS = 60


async def finished(store: PostgresStore, execution_id: str) -> ExecutionRecord:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        record = await store.get_execution(execution_id)
        if record is not None and record.status != "running":
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not finish in {WAIT_SECONDS} s")


async def runs_of(store: PostgresStore, path: str) -> list[ExecutionRecord]:
    return [e for e in await store.list_executions(limit=1000) if e.path == path]


async def wait_for_runs(store: PostgresStore, path: str, n: int) -> list[ExecutionRecord]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = await runs_of(store, path)
        if len(found) >= n:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {n} run(s) of {path} after {WAIT_SECONDS} s: {await runs_of(store, path)}")


@asynccontextmanager
async def deployment(url: str) -> AsyncIterator[tuple[httpx.AsyncClient, PostgresStore]]:
    """The server app in-process, one worker, and a store to look at what they did."""
    app = create_app(ServerConfig(database_url=url, reap_interval=0.05))
    worker = Worker(url, WorkerOptions(name="w1", concurrency=2, poll_interval=0.05))
    running = asyncio.ensure_future(worker.run())
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://noetl.test") as client, \
            PostgresStore(url) as store:
        try:
            yield client, store
        finally:
            worker.request_stop()
            await running


def test_a_trigger_fires_once_on_its_status_only(url: str) -> None:
    async def main() -> None:
        async with deployment(url) as (client, store):
            for content in (SOURCE, TARGET.replace("NAME", "on_ok"), TARGET.replace("NAME", "on_fail")):
                assert (await client.post("/api/catalog/register", json={"content": content})).status_code == 200
            for on, run in (("completed", "tests/on_ok"), ("failed", "tests/on_fail")):
                added = await client.post("/api/triggers", json={"on_path": "tests/source", "on": on, "run": run})
                assert added.status_code == 200, added.text
            listed = (await client.get("/api/triggers")).json()
            assert sorted((t["on"], t["run"]) for t in listed) == [("completed", "tests/on_ok"),
                                                                    ("failed", "tests/on_fail")]
            bad = await client.post("/api/triggers", json={"on_path": "tests/source", "on": "done", "run": "x"})
            assert bad.status_code == 400
            # the body's field, not the command line's --on
            assert bad.json()["error"] == "on: expected one of completed, failed, got 'done'", bad.text

            ok = (await client.post("/api/execute", json={"path": "tests/source"})).json()["execution_id"]
            assert (await finished(store, ok)).status == "completed"
            [fired] = await wait_for_runs(store, "tests/on_ok", 1)
            assert fired.payload["trigger"]["execution_id"] == ok
            assert (fired.payload["trigger"]["path"], fired.payload["trigger"]["status"]) == (
                "tests/source", "completed")
            await asyncio.sleep(2.5)  # more poller ticks: still one fire, and no fire on failure
            assert len(await runs_of(store, "tests/on_ok")) == 1
            assert await runs_of(store, "tests/on_fail") == []

            failed = (await client.post("/api/execute", json={"path": "tests/source",
                                                              "payload": {"fail": True}})).json()["execution_id"]
            assert (await finished(store, failed)).status == "failed"
            [on_fail] = await wait_for_runs(store, "tests/on_fail", 1)
            assert on_fail.payload["trigger"]["execution_id"] == failed
            assert on_fail.payload["trigger"]["status"] == "failed"
            await asyncio.sleep(2.5)
            assert len(await runs_of(store, "tests/on_ok")) == 1
            assert len(await runs_of(store, "tests/on_fail")) == 1

            deleted = await client.delete(f"/api/triggers/{listed[0]['name']}")
            assert deleted.status_code == 200
            assert (await client.delete(f"/api/triggers/{listed[0]['name']}")).status_code == 404

    asyncio.run(main())


# Over a thousand transactions one after another (537 executions written, then a run started for
# each): seconds on an idle machine, but past the default 120 s on a loaded 2-core one.
@pytest.mark.timeout(360)
def test_a_burst_of_finished_executions_fires_for_every_one_once(url: str) -> None:
    """More executions finish between two ticks than one page holds: each fires its trigger once,
    and pairs that fell behind the look-back are forgotten (the poller's memory stays bounded)."""
    from datetime import UTC, datetime, timedelta

    from noetl.runtime.distributed import DecisionCore
    from noetl.scheduling import triggered
    from noetl.triggers import checked_trigger

    async def main() -> None:
        async with PostgresStore(url) as store:
            core = DecisionCore(store)
            await store.register_catalog(path="tests/on_ok", kind="Playbook", content=TARGET.replace("NAME", "on_ok"))
            trigger = checked_trigger(on_path="tests/source", on="completed", run="tests/on_ok")
            await store.put_trigger(trigger)
            [trigger] = await store.list_triggers()
            base = datetime.now(UTC) + timedelta(seconds=1)  # after the trigger was added
            count = triggered.PAGE + 37
            for i in range(count):
                moment = (base + timedelta(milliseconds=i)).isoformat()
                await store.create_execution(ExecutionRecord(
                    execution_id=str(10_000 + i), path="tests/source", status="running", started_at=moment), [])
                await store.append_events(str(10_000 + i), [], update={"status": "completed", "ended_at": moment})
            await store.create_execution(ExecutionRecord(execution_id="99999", path="tests/source_other",
                                                         status="running", started_at=base.isoformat()), [])
            await store.append_events("99999", [], update={"status": "completed", "ended_at": base.isoformat()})

            seen = triggered.Seen(since=base - timedelta(minutes=5))
            started = await triggered.tick(core, seen, now=base + timedelta(seconds=5))
            assert len(started) == count
            assert await triggered.tick(core, seen, now=base + timedelta(seconds=6)) == []  # each once
            fired = await store.list_executions(path="tests/on_ok", limit=10_000)
            fired_for = {r.payload["trigger"]["execution_id"] for r in fired}
            assert fired_for == {str(10_000 + i) for i in range(count)}
            await triggered.tick(core, seen, now=base + timedelta(minutes=10))
            assert seen.handled == {}

    asyncio.run(main())


def test_triggers_that_start_each_other_stop_at_the_cycle(url: str) -> None:
    # tests/ping completes -> tests/pong, tests/pong completes -> tests/ping: executions without end.
    async def main() -> None:
        async with deployment(url) as (client, store):
            for name in ("ping", "pong"):
                content = TARGET.replace("NAME", name)
                assert (await client.post("/api/catalog/register", json={"content": content})).status_code == 200
            for on_path, run in (("tests/ping", "tests/pong"), ("tests/pong", "tests/ping")):
                added = await client.post("/api/triggers", json={"on_path": on_path, "on": "completed", "run": run})
                assert added.status_code == 200, added.text
            first = (await client.post("/api/execute", json={"path": "tests/ping"})).json()["execution_id"]
            [pong] = await wait_for_runs(store, "tests/pong", 1)
            assert (await finished(store, pong.execution_id)).status == "completed"
            await asyncio.sleep(2.5)  # more poller ticks: the cycle is not closed
            assert [r.execution_id for r in await runs_of(store, "tests/ping")] == [first]
            assert len(await runs_of(store, "tests/pong")) == 1

    asyncio.run(main())
