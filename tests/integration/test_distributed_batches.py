"""Batch rows on PostgreSQL: the iterations of a loop a deciding worker takes for itself share one
queue row (one lease, one heartbeat, one `done`), and each still reports, fails, is cancelled and is
recovered on its own: a member's duplicate report is ignored, a crashed worker's finished members are
not run again and its unfinished ones are, and after the last attempt only the unfinished ones fail."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_distributed_cluster import create_database
from test_distributed_core import FakeAffinity, done, ended

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.runtime.distributed import DecisionCore
from noetl.runtime.reaper import Reaper
from noetl.store.postgres import PostgresStore
from noetl.store.postgres.queue import CommandQueue, LeasedCommand

# `start` is reported by the test; its decision issues the six iterations of `fan` at once, inserted
# leased to the deciding worker (FakeAffinity) as one batch row.
FAN_WITH = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: fan, path: tests/batch_fan}
workflow:
  - step: start
    tool: {kind: noop}
    next: [{step: fan}]
  - step: fan
    loop: {in: "{{ range(6) | list }}", iterator: i, spec: {mode: parallel, max_in_flight: 10}}
    tool: TOOL
"""
FAN = FAN_WITH.replace("TOOL", "{kind: noop}")


@pytest.fixture
def url(pg_cluster: dict[str, Any]) -> str:
    return create_database(pg_cluster)


def reports(url: str, execution_id: str) -> Counter[tuple[str, int]]:
    """(event type, loop index) of every iteration report in the log."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event_type, (meta->>'loop_index')::int FROM noetl.event "
                            "WHERE execution_id = %s AND event_type IN ('call.done', 'call.error') "
                            "AND node_name = 'fan'", (int(execution_id),)).fetchall()
    return Counter((row[0], row[1]) for row in rows)


def fan_rows(url: str) -> list[tuple[str, str, int, str | None]]:
    with psycopg.connect(url) as conn:
        return [tuple(row) for row in conn.execute(  # type: ignore[misc]
            "SELECT command_id, status, attempt, lease_owner FROM noetl.command WHERE step = 'fan'").fetchall()]


async def batch_of_six(store: PostgresStore) -> tuple[DecisionCore, str, list[LeasedCommand]]:
    """A FAN execution whose six `fan` iterations the deciding worker w1 holds in one row."""
    affinity = FakeAffinity(10)
    core = DecisionCore(store, affinity=affinity)
    execution_id = await core.submit(playbook_text=FAN)
    (first,) = await CommandQueue(store).lease(owner="w1", limit=1, lease_seconds=30, now=core.now())
    assert await core.report(first, Event(execution_id, ev.CALL_DONE, node_name="start", status="completed",
                                          meta={"command_id": first.command_id, "attempt": 1, "worker": "w1"}))
    return core, execution_id, affinity.started


def test_a_loops_iterations_share_one_row_and_each_reports_on_its_own(url: str) -> None:
    async def scenario() -> tuple[list[LeasedCommand], list[Any], list[Any], set[str], str, str]:
        async with PostgresStore(url) as store:
            core, execution_id, members = await batch_of_six(store)
            rows_while_running = fan_rows(url)
            held = await CommandQueue(store).heartbeat(owner="w1", command_ids=[members[0].lease_id],
                                                       lease_seconds=30, now=core.now())
            first_half = await asyncio.gather(*(core.report(m, done(m)) for m in members[:3]))
            rows_half_way = fan_rows(url)
            second_half = await asyncio.gather(*(core.report(m, done(m)) for m in members[3:]))
            record = await ended(store, execution_id)
            return members, first_half + second_half, [rows_while_running, rows_half_way], held, \
                record.status, execution_id

    members, outcomes, (while_running, half_way), held, status, execution_id = asyncio.run(scenario())
    assert [m.payload["loop_index"] for m in members] == list(range(6))
    assert len({m.lease_id for m in members}) == 1 and all(m.row_id for m in members)
    assert [row[1:] for row in while_running] == [("leased", 1, "w1")]  # one row for six iterations
    assert held == {members[0].lease_id}
    assert [row[1] for row in half_way] == ["leased"]  # three members still to report
    assert outcomes == [True] * 6 and status == "completed"
    assert [row[1] for row in fan_rows(url)] == ["done"]
    assert reports(url, execution_id) == Counter({(ev.CALL_DONE, i): 1 for i in range(6)})


def test_a_members_duplicate_report_is_ignored_while_its_row_is_leased(url: str) -> None:
    async def scenario() -> tuple[list[bool], str, str]:
        async with PostgresStore(url) as store:
            core, execution_id, members = await batch_of_six(store)
            first = await core.report(members[0], done(members[0]))
            again = await core.report(members[0], done(members[0], result="twice"))  # a retried report
            together = await asyncio.gather(*(core.report(m, done(m)) for m in [members[1], members[1]]))
            rest = await asyncio.gather(*(core.report(m, done(m)) for m in members[2:]))
            late = await core.report(members[3], done(members[3]))  # after the row is done
            record = await ended(store, execution_id)
            return [first, again, *together, *rest, late], record.status, execution_id

    outcomes, status, execution_id = asyncio.run(scenario())
    assert outcomes == [True, False, True, False, True, True, True, True, False]
    assert status == "completed"
    assert reports(url, execution_id) == Counter({(ev.CALL_DONE, i): 1 for i in range(6)})


def test_a_crashed_workers_batch_runs_again_only_for_its_unreported_members(url: str) -> None:
    async def scenario() -> tuple[list[str], list[int], list[bool], bool, str, str]:
        async with PostgresStore(url) as store:
            core, execution_id, members = await batch_of_six(store)
            assert await asyncio.gather(*(core.report(m, done(m)) for m in members[:2])) == [True, True]
            # w1 dies: its row's lease runs out and the reaper hands the row back.
            queue = CommandQueue(store)
            requeued = await queue.requeue_expired(max_attempts=3, now=core.now() + timedelta(seconds=60))
            again = await queue.lease(owner="w2", limit=4, lease_seconds=30, now=core.now())
            to_run = [m for m in again if await DecisionCore(store).leased_command(m) is not None]
            outcomes = [await core.report(m, done(m)) for m in to_run]
            stale = await core.report(members[4], done(members[4]))  # w1's attempt, reported late
            record = await ended(store, execution_id)
            return requeued, [m.payload["loop_index"] for m in to_run], outcomes, stale, record.status, \
                execution_id

    requeued, rerun, outcomes, stale, status, execution_id = asyncio.run(scenario())
    assert len(requeued) == 1
    assert rerun == [2, 3, 4, 5] and outcomes == [True] * 4 and stale is False
    assert status == "completed"
    assert reports(url, execution_id) == Counter({(ev.CALL_DONE, i): 1 for i in range(6)})
    assert [row[1:] for row in fan_rows(url)] == [("done", 2, "w2")]


def test_after_the_last_attempt_only_the_unreported_members_fail(url: str) -> None:
    async def scenario() -> tuple[dict[str, int], str, str, dict[str, Any]]:
        async with PostgresStore(url) as store:
            core, execution_id, members = await batch_of_six(store)
            assert await asyncio.gather(*(core.report(m, done(m)) for m in members[:2])) == [True, True]
            with psycopg.connect(url, autocommit=True) as conn:  # w1 died on its only attempt
                conn.execute("UPDATE noetl.command SET lease_expires_at = now() - interval '1 minute' "
                             "WHERE step = 'fan'")
            reaped = await Reaper(core, max_attempts=1).reap_once()
            again = await Reaper(core, max_attempts=1).reap_once()  # nothing left to fail
            record = await ended(store, execution_id)
            assert again == {"requeued": 0, "failed": 0}
            events = await store.list_events(execution_id)
            loop_done = next(e for e in events if e.event_type == ev.LOOP_DONE)
            return reaped, record.status, execution_id, loop_done.result["stats"]

    reaped, status, execution_id, stats = asyncio.run(scenario())
    assert reaped == {"requeued": 0, "failed": 4}
    assert status == "failed" and stats == {"total": 6, "success": 2, "failed": 4}
    assert reports(url, execution_id) == Counter(
        {**{(ev.CALL_DONE, i): 1 for i in range(2)}, **{(ev.CALL_ERROR, i): 1 for i in range(2, 6)}})
    assert [row[1] for row in fan_rows(url)] == ["done"]


def test_cancelling_mid_batch_ends_the_row_and_ignores_its_later_reports(url: str) -> None:
    async def scenario() -> tuple[set[str], bool, str, str]:
        async with PostgresStore(url) as store:
            core, execution_id, members = await batch_of_six(store)
            assert await core.report(members[0], done(members[0]))
            await core.cancel(execution_id)
            held = await CommandQueue(store).heartbeat(owner="w1", command_ids=[members[1].lease_id],
                                                       lease_seconds=30, now=core.now())
            late = await core.report(members[1], done(members[1]))
            record = await store.get_execution(execution_id)
            assert record is not None
            return held, late, record.status, execution_id

    held, late, status, execution_id = asyncio.run(scenario())
    assert held == set() and late is False and status == "cancelled"
    assert reports(url, execution_id) == Counter({(ev.CALL_DONE, 0): 1})
    assert [row[1] for row in fan_rows(url)] == ["cancelled"]


# Iteration 2 fails each of its three tries; the others succeed at once.
RETRIED = FAN_WITH.replace("TOOL", """
      kind: python
      input: {i: "{{ iter.i }}"}
      code: |
        if i == 2:
            raise ValueError("iteration 2 is down")
        result = i
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'error' }}"
              then: {do: retry, attempts: 3, backoff: fixed, delay: 0.01}""")


def test_a_worker_retries_one_member_and_the_others_of_its_row_are_unaffected(url: str) -> None:
    """A real worker: the iterations come to it as one row (its own decision's), the failing one is
    tried three times within its command and fails alone."""
    from noetl.runtime.worker import Worker, WorkerOptions
    from noetl.waiting import within

    async def scenario() -> tuple[str, str, int, Event, dict[str, Any]]:
        worker = Worker(url, WorkerOptions(name="w1", concurrency=8, poll_interval=0.05))
        running = asyncio.create_task(worker.run())
        try:
            async with PostgresStore(url) as store:
                execution_id = await DecisionCore(store).submit(playbook_text=RETRIED)
                record = await ended(store, execution_id)
                events = await store.list_events(execution_id)
        finally:
            worker.request_stop()
            await within(running, 30)
        with psycopg.connect(url) as conn:
            batches = conn.execute("SELECT count(*) FROM noetl.command WHERE payload ? 'members'").fetchone()
        failed = next(e for e in events if e.event_type == ev.CALL_ERROR)
        loop_done = next(e for e in events if e.event_type == ev.LOOP_DONE)
        assert batches is not None
        return record.status, execution_id, int(batches[0]), failed, loop_done.result["stats"]

    status, execution_id, batches, failed, stats = asyncio.run(scenario())
    assert batches == 1
    assert status == "failed" and stats == {"total": 6, "success": 5, "failed": 1}
    assert failed.meta["loop_index"] == 2 and "iteration 2 is down" in str(failed.error)
    assert reports(url, execution_id) == Counter(
        {**{(ev.CALL_DONE, i): 1 for i in (0, 1, 3, 4, 5)}, (ev.CALL_ERROR, 2): 1})
    assert [row[1] for row in fan_rows(url)] == ["done"]


def test_an_api_worker_gets_a_requeued_batch_rows_unreported_members_with_its_lease(url: str) -> None:
    """A batch row a crashed worker held goes back to the queue whole; an API worker leasing it is
    shipped only the members still to run, each naming the row it renews and reports against."""
    from noetl.runtime.gateway import WorkerGateway

    async def scenario() -> tuple[list[dict[str, Any]], list[str], list[bool], str, str]:
        async with PostgresStore(url) as store:
            core, execution_id, members = await batch_of_six(store)
            assert await core.report(members[0], done(members[0]))
            await CommandQueue(store).requeue_expired(max_attempts=3, now=core.now() + timedelta(seconds=60))
            gateway = WorkerGateway(DecisionCore(store))
            shipped = await gateway.lease(worker="r1", limit=8, lease_seconds=30)
            held = await gateway.heartbeat(worker="r1", command_ids=[shipped[0]["lease_id"]], lease_seconds=30)
            outcomes = []
            for item in shipped:
                event = {"execution_id": execution_id, "event_type": ev.CALL_DONE, "node_name": "fan",
                         "status": "completed", "result": 1,
                         "meta": {"command_id": item["command_id"], "attempt": item["attempt"], "worker": "r1",
                                  "loop_index": item["payload"]["loop_index"]}}
                outcomes.append(await gateway.report(worker="r1", command_id=item["command_id"],
                                                     attempt=item["attempt"], event=event, secrets=[],
                                                     lease_id=item["lease_id"]))
            record = await ended(store, execution_id)
            return shipped, held, outcomes, record.status, execution_id

    shipped, held, outcomes, status, execution_id = asyncio.run(scenario())
    assert [item["payload"]["loop_index"] for item in shipped] == [1, 2, 3, 4, 5]
    assert len({item["lease_id"] for item in shipped}) == 1 and held == [shipped[0]["lease_id"]]
    assert outcomes == [True] * 5 and status == "completed"
    assert reports(url, execution_id) == Counter({(ev.CALL_DONE, i): 1 for i in range(6)})


# Each run of an iteration leaves a line in `<marker>.<i>`; an odd iteration's first run waits to be
# killed, its second (the rescuer's) ends at once.
KILLED = FAN_WITH.replace("TOOL", """
      kind: python
      input: {i: "{{ iter.i }}", marker: "{{ workload.marker }}"}
      code: |
        import os, time
        path = f"{marker}.{i}"
        first = not os.path.exists(path)
        with open(path, "a") as runs:
            runs.write("run\\n")
        if first and i % 2:
            time.sleep(60)
        result = i""").replace("metadata: {name: fan, path: tests/batch_fan}",
                              "metadata: {name: fan_killed, path: tests/batch_fan_killed}\nworkload: {marker: ''}")


@pytest.mark.slow
def test_kill_9_of_a_worker_mid_batch_reruns_only_its_unfinished_members(pg_cluster: dict[str, Any],
                                                                         tmp_path: Path) -> None:
    from test_distributed_cluster import clusters
    from test_distributed_faults import wait_for

    factory = clusters(pg_cluster, tmp_path)
    make = next(factory)
    try:
        cluster = make(lease_seconds=3)  # renewed every second (a 1 s lease lapses under a loaded worker)
        cluster.start_server()
        cluster.register(KILLED)
        cluster.start_worker("doomed", concurrency=8)
        marker = tmp_path / "runs"
        execution_id = cluster.execute("tests/batch_fan_killed", {"marker": str(marker)})
        wait_for(lambda: sum(reports(cluster.database_url, execution_id).values()) == 3
                 and all((tmp_path / f"runs.{i}").exists() for i in (1, 3, 5)), what="the even iterations")
        cluster.stop_worker("doomed", signal.SIGKILL)
        cluster.start_worker("rescuer", concurrency=8)
        doc = cluster.wait(execution_id, timeout=90)
        workers = dict(cluster.sql("SELECT (meta->>'loop_index')::int, meta->>'worker' FROM noetl.event "
                                   "WHERE execution_id = %s AND event_type = 'call.done' AND node_name = 'fan'",
                                   int(execution_id)))
        rows = cluster.sql("SELECT status, attempt, lease_owner, jsonb_array_length(payload->'members') "
                           "FROM noetl.command WHERE step = 'fan'")
        counts = reports(cluster.database_url, execution_id)
    finally:
        next(factory, None)
    assert doc["status"] == "completed", doc
    assert doc["steps"]["fan"]["result"]["results"] == list(range(6))
    assert counts == Counter({(ev.CALL_DONE, i): 1 for i in range(6)})
    assert rows == [("done", 2, "rescuer", 6)]  # one row, leased again once
    assert workers == {i: "doomed" if i % 2 == 0 else "rescuer" for i in range(6)}
    runs = {i: (tmp_path / f"runs.{i}").read_text().count("run") for i in range(6)}
    assert runs == {i: 1 if i % 2 == 0 else 2 for i in range(6)}  # finished members were not run again


def test_an_external_report_naming_a_batch_row_is_refused_and_changes_nothing(url: str) -> None:
    """POST /api/events reports one command; a batch row is several iterations (a report naming it
    would mark every member done), so it is a 400 naming the row, and its members still report."""
    import httpx
    from test_server_api import served

    async def scenario(client: httpx.AsyncClient, app: Any) -> None:
        async with PostgresStore(url) as store:
            core, execution_id, members = await batch_of_six(store)
            row = members[0]
            response = await client.post("/api/events", json={
                "execution_id": execution_id, "event_type": "call.done", "node_name": "fan", "result": 7,
                "meta": {"command_id": row.lease_id, "attempt": 1, "worker": "w1"}})
            assert response.status_code == 400, response.text
            assert row.lease_id in response.json()["error"] and "several loop iterations" in response.json()["error"]
            assert reports(url, execution_id) == Counter()
            assert await asyncio.gather(*(core.report(m, done(m)) for m in members)) == [True] * 6

    served(url, scenario)
