"""A cancel on the server is recorded even while workers hold locks on the execution's commands:
the cancel's transaction locks them in the order heartbeats do, so the two wait for each other
instead of deadlocking (PostgreSQL would abort one of them: a 503 for the cancel, or a lost lease
renewal for the worker)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.waiting import until
from test_distributed_cluster import cluster_factory, create_database  # noqa: F401 (a fixture)

from noetl.runtime.distributed import DecisionCore
from noetl.store.postgres import PostgresStore
from noetl.store.postgres.queue import CommandQueue

LOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: loop, path: tests/cancel_loop}
workflow:
  - step: start
    loop: {in: "{{ range(3) | list }}", iterator: i, spec: {mode: parallel}}
    tool: {kind: noop}
"""
LOCK_COMMAND = "SELECT 1 FROM noetl.command WHERE command_id = %s FOR UPDATE"


@pytest.fixture
def url(pg_cluster: dict[str, Any]) -> str:
    return create_database(pg_cluster)


async def waiting_on_a_lock(url: str, seconds: float = 60) -> int:
    """The backend of this database that waits for a row lock (the cancel's transaction), once it does."""
    deadline = time.monotonic() + seconds
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cursor = await conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
            row = await cursor.fetchone()
            if row:
                return int(row[0])
            await asyncio.sleep(0.02)
    raise AssertionError(f"no transaction waited for a lock within {seconds} s")


async def statuses(url: str, command_ids: list[str]) -> set[str]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute("SELECT status FROM noetl.command WHERE command_id = ANY(%s)", [command_ids])
        return {row[0] for row in await cursor.fetchall()}


async def leased_loop(store: PostgresStore) -> tuple[DecisionCore, str, list[str]]:
    """A started LOOP whose 3 commands a worker holds: the core, the execution and the command ids (sorted)."""
    core = DecisionCore(store)
    execution_id = await core.submit(playbook_text=LOOP)
    leased = await CommandQueue(store).lease(owner="w1", limit=3, lease_seconds=30, now=core.now())
    return core, execution_id, sorted(c.command_id for c in leased)


def test_cancel_while_a_worker_renews_its_leases_in_order_is_recorded(url: str) -> None:
    async def main() -> None:
        async with PostgresStore(url) as store:
            core, execution_id, (first, *others) = await leased_loop(store)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                # The first command's row is rewritten after the others (a lease renewed, given back and
                # taken again): a scan of the execution's commands meets it last.
                await conn.execute("UPDATE noetl.command SET status = 'queued' WHERE command_id = %s", [first])
                await conn.execute("UPDATE noetl.command SET status = 'leased' WHERE command_id = %s", [first])
                async with conn.transaction():  # a heartbeat: the worker's rows, locked in command id order
                    await conn.execute(LOCK_COMMAND, [first])
                    cancel = asyncio.ensure_future(core.cancel(execution_id))
                    await waiting_on_a_lock(url)
                    for command_id in others:  # the cancel must not hold these while it waits for the first
                        await conn.execute("SET LOCAL lock_timeout = '20s'")
                        await conn.execute(LOCK_COMMAND, [command_id])
            answer = await cancel
            assert answer == {"execution_id": execution_id, "status": "cancelled", "cancelled": True}
            assert await statuses(url, [first, *others]) == {"cancelled"}

    asyncio.run(main())


def test_cancel_whose_connection_is_lost_is_tried_again_and_recorded(url: str) -> None:
    async def main() -> None:
        async with PostgresStore(url) as store:
            core, execution_id, command_ids = await leased_loop(store)
            # A heartbeat holds the commands while the cancel comes.
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn, conn.transaction():
                await conn.execute("SELECT 1 FROM noetl.command WHERE command_id = ANY(%s) FOR UPDATE", [command_ids])
                cancel = asyncio.ensure_future(core.cancel(execution_id))
                await conn.execute("SELECT pg_terminate_backend(%s)", [await waiting_on_a_lock(url)])
            answer = await cancel
            assert answer == {"execution_id": execution_id, "status": "cancelled", "cancelled": True}
            assert await statuses(url, command_ids) == {"cancelled"}
            events = [e.event_type for e in await store.list_events(execution_id)]
            assert events.count("execution.cancelled") == 1, events

    asyncio.run(main())


def test_a_cancel_tried_again_after_its_commit_still_cancels_the_children(url: str) -> None:
    # A connection lost as the cancel's COMMIT went through: the next try finds the execution
    # already cancelled (nothing to record) and must still cancel its running children.
    async def main() -> None:
        async with PostgresStore(url) as store:
            core = DecisionCore(store)
            parent = await core.submit(playbook_text=LOOP)
            child = await core.submit(playbook_text=LOOP, parent_execution_id=parent)
            assert await core._record_cancel(parent, "cancelled by request")  # the first try's commit
            answer = await core.cancel(parent)  # the try after it
            assert answer["status"] == "cancelled"
            record = await store.get_execution(child)
            assert record is not None and record.status == "cancelled"

    asyncio.run(main())


SLEEPING_LOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: sleepers, path: tests/cancel_sleepers}
workflow:
  - step: start
    loop: {in: "{{ range(4) | list }}", iterator: n, spec: {mode: parallel, max_in_flight: 2}}
    tool:
      kind: python
      isolation: process
      input: {n: "{{ iter.n }}", marker: "{{ workload.marker }}"}
      code: |
        import os, time
        open(marker + str(n), "w").write(str(os.getpid()))
        time.sleep(120)
        open(marker + str(n) + ".done", "w").write("late")
        result = n
    next: [{step: after}]
  - step: after
    tool: {kind: noop}
"""


def _running(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def test_noetl_cancel_stops_the_running_iterations_without_waiting_for_a_heartbeat(
        cluster_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    # A 300 s lease renews every 100 s: the workers used to go on running a cancelled execution's
    # iterations until that renewal found their leases gone. They hear of the cancel at once now
    # (the ended execution's notification) and renew then.
    cluster = cluster_factory(lease_seconds=300)
    cluster.start_server()
    cluster.start_worker("w1", concurrency=4)
    cluster.start_worker("w2", concurrency=4)
    cluster.register(SLEEPING_LOOP)
    marker = str(tmp_path / "m_")
    execution_id = cluster.execute("tests/cancel_sleepers", {"marker": marker})
    started = [tmp_path / "m_0", tmp_path / "m_1"]
    until("two iterations running", lambda: all(path.exists() and path.read_text() for path in started))
    pids = [int(path.read_text()) for path in started]

    cancelled = cluster.cli("cancel", execution_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cluster.wait(execution_id)["status"] == "cancelled"
    until("the iterations' processes stopped", lambda: not any(_running(pid) for pid in pids))  # before: 100 s
    doc = cluster.status(execution_id)
    assert doc["status"] == "cancelled" and "after" not in doc["steps"]
    assert sorted(path.name for path in tmp_path.glob("m_*")) == ["m_0", "m_1"]  # nothing else ran


CHAIN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: chain, path: tests/cancel_chain}
workload: {steps: 8}
workflow:
  - step: start
    tool: {kind: noop}
    next: [{step: hop}]
  - step: hop
    tool: {kind: python, input: {n: "{{ ctx.n | default(0) }}"}, code: "result = n + 1"}
    set: {ctx.n: "{{ output.data }}"}
    next:
      arcs:
        - step: hop
          when: "{{ ctx.n < workload.steps }}"
        - step: end
          when: "{{ ctx.n >= workload.steps }}"
  - step: end
    tool: {kind: noop}
"""


def test_executions_that_end_do_not_stop_the_steps_of_others_decided_with_them(
        cluster_factory: Any) -> None:  # noqa: F811
    """An execution's end wakes the workers' heartbeat (so a cancel stops its work at once); the
    heartbeat then found the ended execution's last command gone and cancelled its task, which was
    still deciding, in one transaction, other executions' reports: those waited for their leases to
    lapse and ran again (2,000 chain steps took 34 s instead of 1 s)."""
    cluster = cluster_factory(lease_seconds=3)
    cluster.start_server()
    cluster.register(CHAIN)
    for name in ("w1", "w2"):
        cluster.start_worker(name, concurrency=8)
    ids = [cluster.execute("tests/cancel_chain") for _ in range(20)]
    for execution_id in ids:
        assert cluster.wait(execution_id, timeout=180)["status"] == "completed"
    rerun = cluster.sql("SELECT count(*) FROM noetl.event WHERE event_type = 'call.done' "
                        "AND (meta->>'attempt')::int > 1")
    assert rerun[0][0] == 0, "steps ran again after a lease lapsed"
