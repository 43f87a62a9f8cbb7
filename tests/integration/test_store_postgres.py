"""PostgresStore against the conformance suite, plus what only PostgreSQL has (schema, ids, migrations)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from store_conformance import Clock, StoreConformance, started

from noetl.errors import StoreError
from noetl.ids import new_execution_id
from noetl.store.base import Store
from noetl.store.factory import store_from_url
from noetl.store.postgres import PostgresStore
from noetl.store.postgres.ids import db_id


@pytest.fixture
def fresh_database(pg_cluster: dict[str, Any]) -> str:
    """A new empty database per test, so tests never see each other's rows."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = psycopg.connect(host=pg_cluster["socket_dir"], port=pg_cluster["port"], user=pg_cluster["superuser"],
                            dbname="postgres", autocommit=True)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{pg_cluster["user"]}"')
    base = pg_cluster["url"].rsplit("/", 1)[0]
    return f"{base}/{name}"


class TestPostgresStore(StoreConformance):
    @pytest.fixture(autouse=True)
    def _database(self, fresh_database: str) -> None:
        self.url = fresh_database

    async def make_store(self, *, clock: Clock | None = None) -> Store:
        store = PostgresStore(self.url, clock=clock) if clock else PostgresStore(self.url)
        await store.open()
        return store


def test_factory_builds_a_postgres_store(fresh_database: str) -> None:
    assert isinstance(store_from_url(fresh_database), PostgresStore)


def test_numeric_ids_are_stored_as_bigint_and_the_seed_queries_work(fresh_database: str) -> None:
    execution_id = new_execution_id()

    async def scenario() -> None:
        async with PostgresStore(fresh_database) as store:
            await started(store, execution_id)

    asyncio.run(scenario())
    with psycopg.connect(fresh_database) as conn:
        by_number = conn.execute(f"SELECT event_type FROM noetl.event WHERE execution_id = {execution_id}").fetchall()
        by_text = conn.execute(
            f"SELECT event_type FROM noetl.event WHERE execution_id = '{execution_id}'").fetchall()
        kind = conn.execute("SELECT data_type FROM information_schema.columns WHERE table_schema = 'noetl' "
                            "AND table_name = 'event' AND column_name = 'execution_id'").fetchone()
    assert by_number == by_text == [("playbook.initialized",)]
    assert kind == ("bigint",)


def test_text_ids_map_to_negative_numbers_and_read_back_unchanged() -> None:
    assert db_id("123") == 123
    assert db_id("exec-1") < 0 and db_id("exec-1") == db_id("exec-1")
    assert db_id("0123") < 0  # not canonical: kept as text so it reads back as written


def test_migrations_are_idempotent_and_concurrent_opens_are_safe(fresh_database: str) -> None:
    async def scenario() -> list[list[int]]:
        stores = [PostgresStore(fresh_database, migrate=False) for _ in range(4)]
        for store in stores:
            await store.open()
        try:
            return list(await asyncio.gather(*(store.migrate() for store in stores)))
        finally:
            for store in stores:
                await store.close()

    applied = asyncio.run(scenario())
    assert sorted(applied, key=len) == [[], [], [], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]
    with psycopg.connect(fresh_database) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'noetl'")}
    assert {"execution", "event", "command", "catalog", "credential", "schema_migrations", "step_stats"} <= tables


def test_unreachable_database_is_a_store_error_without_the_password(pg_cluster: dict[str, Any]) -> None:
    url = "postgresql://someone:hunter2secret@127.0.0.1:1/nothing"

    async def scenario() -> None:
        await PostgresStore(url, connect_timeout=1).open()

    with pytest.raises(StoreError) as caught:
        asyncio.run(scenario())
    assert "hunter2secret" not in str(caught.value)
    assert str(caught.value).endswith('port 1 failed: Connection refused')


def test_decision_statements_lock_check_leases_catch_up_and_record(fresh_database: str) -> None:
    """The decision transaction's operations (store/postgres/decisions.py) with typed rows."""
    from datetime import UTC, datetime

    from noetl.engine.commands import Command
    from noetl.engine.events import Event
    from noetl.store.postgres.decisions import DecisionStatements, DecisionWrite, Lease, NewCommandLeases
    from noetl.store.postgres.queue import CommandQueue, LeasedCommand
    from noetl.store.postgres.rows import event_rows

    execution_id = new_execution_id()
    now = datetime.now(UTC)

    def command(step: str) -> Command:
        return Command(command_id=f"{execution_id}:{step}", execution_id=execution_id, step=step,
                       tasks=[{"kind": "noop"}], context={})

    async def scenario() -> None:
        async with PostgresStore(fresh_database) as store:
            await started(store, execution_id)
            statements = DecisionStatements(store)
            queue = CommandQueue(store)
            await store.write("queue", lambda conn: statements.queue(conn, execution_id, [command("a")],
                                                                      now=now.isoformat(), as_of=1))
            [leased] = await queue.lease(owner="w1", limit=5, lease_seconds=30, now=now)
            assert leased.payload["as_of"] == 1 and leased.payload["tasks"] == [{"kind": "noop"}]

            async def decide(conn: Any) -> None:
                locked = await statements.lock(conn, execution_id, [leased.command_id])
                assert locked is not None and locked.status == "running" and locked.last_event_id == 1
                assert locked.leases == {leased.command_id: Lease("leased", 1, "w1")}
                assert locked.leases[leased.command_id].held_by(leased)
                assert not locked.leases[leased.command_id].held_by(
                    LeasedCommand(leased.command_id, execution_id, "a", 1, {}, "w2"))
                [first] = await statements.events_after(conn, execution_id, 0)
                assert (first.event_id, first.event_type) == (1, "playbook.initialized")
                done = Event(execution_id, "call.done", node_name="a", status="completed", result={"x": 1},
                             created_at=now.isoformat())
                write = DecisionWrite(execution_id=execution_id, rows=event_rows(execution_id, [done]),
                                      first_event_id=2, now=now.isoformat(), commands=[command("b")], as_of=2,
                                      done_ids=[leased.command_id],
                                      leases=NewCommandLeases(count=1, owner="w1", seconds=30.0))
                await statements.record(conn, [write], lease_now=now)

            await store.write("decide", decide, pipeline=True)
            events = await store.list_events(execution_id)
            assert [(e.event_id, e.event_type, e.result) for e in events][-1] == (2, "call.done", {"x": 1})
            follow_up = await queue.get(f"{execution_id}:b")
            assert follow_up is not None and follow_up.lease_owner == "w1"  # inserted leased to the decider
            assert await store.write("lock", lambda conn: statements.lock(conn, "424242", [])) is None

    asyncio.run(scenario())
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute("SELECT step, status, lease_owner FROM noetl.command ORDER BY step").fetchall()
    assert rows == [("a", "done", "w1"), ("b", "leased", "w1")]


@pytest.mark.parametrize("failure", ["raises", "statement fails"])
def test_a_pipelined_write_that_fails_stores_none_of_its_statements(fresh_database: str, failure: str) -> None:
    """A pipelined write sends BEGIN with its first statements: a failure in the work, or in a
    statement whose result was never fetched, rolls all of them back, and the store goes on."""
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE scratch (n int PRIMARY KEY)")

    async def work(conn: Any) -> None:
        await conn.execute("INSERT INTO scratch VALUES (1)")
        await conn.execute("INSERT INTO scratch VALUES (2)")
        if failure == "raises":
            raise StoreError("decide: the work gave up")
        await conn.execute("INSERT INTO scratch VALUES (1)")  # a duplicate key, found only at COMMIT

    async def scenario() -> None:
        async with PostgresStore(fresh_database) as store:
            with pytest.raises(StoreError) as caught:
                await store.write("decide", work, pipeline=True)
            assert ("gave up" if failure == "raises" else "duplicate key") in str(caught.value)
            for n in (3, 4):  # the pool's connections are out of the failed transaction
                await store.write("insert", lambda conn, n=n: conn.execute("INSERT INTO scratch VALUES (%s)", (n,)),
                                  pipeline=True)

    asyncio.run(scenario())
    with psycopg.connect(fresh_database) as conn:
        assert conn.execute("SELECT n FROM scratch ORDER BY n").fetchall() == [(3,), (4,)]


def test_a_group_lock_reads_each_known_execution_and_all_the_reported_commands(fresh_database: str) -> None:
    """lock_many (one statement for a group transaction): the executions it knows, each with its
    status and last event, and the leases of every reported command; an unknown execution is absent."""
    from datetime import UTC, datetime

    from noetl.engine.commands import Command
    from noetl.store.postgres.decisions import DecisionStatements, Lease
    from noetl.store.postgres.queue import CommandQueue

    first, second, unknown = new_execution_id(), new_execution_id(), new_execution_id()
    now = datetime.now(UTC)

    def command(execution_id: str) -> Command:
        return Command(command_id=f"{execution_id}:a", execution_id=execution_id, step="a",
                       tasks=[{"kind": "noop"}], context={})

    async def scenario() -> None:
        async with PostgresStore(fresh_database) as store:
            statements, queue = DecisionStatements(store), CommandQueue(store)
            for execution_id in (first, second):
                await started(store, execution_id)
                await store.write("queue", lambda conn, e=execution_id: statements.queue(
                    conn, e, [command(e)], now=now.isoformat(), as_of=1))
            leased = await queue.lease(owner="w1", limit=5, lease_seconds=30, now=now)
            ids = sorted(c.command_id for c in leased)
            assert len(ids) == 2
            locked = await store.write("lock", lambda conn: statements.lock_many(
                conn, [second, unknown, first], ids), pipeline=True)
            assert sorted(locked) == sorted([first, second])
            for execution_id in (first, second):
                assert (locked[execution_id].status, locked[execution_id].last_event_id) == ("running", 1)
                assert locked[execution_id].leases == {i: Lease("leased", 1, "w1") for i in ids}
            alone = await store.write("lock", lambda conn: statements.lock_many(conn, [first], []), pipeline=True)
            assert list(alone) == [first] and alone[first].leases == {}

    asyncio.run(scenario())


def test_a_worker_leases_executions_no_other_worker_holds_before_sharing_one(fresh_database: str) -> None:
    """Two workers leasing from one queue each take executions of their own first (two workers on
    one execution would each decide its reports and wait for each other's transactions), and only
    then share one, in queue order: a single large loop still runs on both."""
    from datetime import UTC, datetime

    from noetl.engine.commands import Command
    from noetl.store.postgres.decisions import DecisionStatements
    from noetl.store.postgres.queue import CommandQueue

    first, second = new_execution_id(), new_execution_id()
    now = datetime.now(UTC)

    def commands(execution_id: str) -> list[Command]:
        return [Command(command_id=f"{execution_id}:{n}", execution_id=execution_id, step=f"s{n}",
                        tasks=[{"kind": "noop"}], context={}) for n in range(4)]

    async def scenario() -> None:
        async with PostgresStore(fresh_database) as store:
            statements, queue = DecisionStatements(store), CommandQueue(store)
            for execution_id in (first, second):  # queue order: first's four, then second's four
                await started(store, execution_id)
                await store.write("queue", lambda conn, e=execution_id: statements.queue(
                    conn, e, commands(e), now=now.isoformat(), as_of=1))

            async def lease(owner: str, limit: int) -> set[str]:
                leased = await queue.lease(owner=owner, limit=limit, lease_seconds=30, now=now)
                return {c.command_id for c in leased}

            assert await lease("w1", 2) == {f"{first}:0", f"{first}:1"}
            assert await lease("w2", 2) == {f"{second}:0", f"{second}:1"}  # not first's, held by w1
            assert await lease("w1", 1) == {f"{first}:2"}
            # Once nothing else is queued, w2 shares first's too.
            assert await lease("w2", 4) == {f"{second}:2", f"{second}:3", f"{first}:3"}
            assert await lease("w1", 4) == set()

    asyncio.run(scenario())


def test_a_stored_result_is_read_back_a_slice_at_a_time(fresh_database: str) -> None:
    import hashlib

    from noetl.errors import NotFoundError
    from noetl.results.storage import prefetched, storage_for
    from noetl.store.base import ResultRecord

    data = b"[" + b",".join(b'{"k":%d}' % i for i in range(50_000)) + b"]"

    async def scenario() -> None:
        async with PostgresStore(fresh_database) as store:
            await store.put_result(ResultRecord("r1", data, hashlib.sha256(data).hexdigest(), len(data)))
            slices = [chunk async for chunk in store.iter_result_bytes("r1", slice_bytes=100_000)]
            assert b"".join(slices) == data and len(slices) == -(-len(data) // 100_000)
            assert [len(s) for s in slices[:-1]] == [100_000] * (len(slices) - 1)
            streamed = await prefetched(storage_for(store).stream_bytes("noetl://result/r1"))
            assert b"".join([chunk async for chunk in streamed]) == data
            with pytest.raises(NotFoundError, match="noetl://result/gone"):  # before any byte is sent
                await prefetched(storage_for(store).stream_bytes("noetl://result/gone"))

    asyncio.run(scenario())


def test_a_result_stored_in_pieces_reads_back_whole_and_in_part(fresh_database: str) -> None:
    from noetl.results.storage import storage_for

    parts = [b'{"rows":[', b",".join(b'{"k":%d}' % i for i in range(20_000)), b"]}"]
    data = b"".join(parts)

    async def scenario() -> None:
        async with PostgresStore(fresh_database) as store:
            ref = await storage_for(store).put(parts, sha256="0" * 64, execution_id="1", step="s")
            uri = ref["_ref"]["uri"]
            assert ref["_ref"]["size"] == len(data)
            result_id = uri.rsplit("/", 1)[1]
            record = await store.get_result(result_id)
            assert record is not None and (record.data, record.size) == (data, len(data))
            assert store.read_result_slice(result_id, 9, 15) == b'{"k":0},{"k":1}' == data[9:24]
            # A re-delivered command stores the same id again: the first copy stays, nothing fails.
            await store.put_result_parts(record, [b"other"])
            again = await store.get_result(result_id)
            assert again is not None and again.data == data
            # The upload table is per connection and emptied at commit: a second result is its own.
            second = await storage_for(store).put([b"[1,", b"2]"], sha256="0" * 64)
            assert storage_for(store)._read_bytes(second["_ref"]["uri"]) == b"[1,2]"

    asyncio.run(scenario())


def test_a_template_read_survives_its_connection_being_cut(fresh_database: str) -> None:
    # Templates read results on a connection of their own; a PostgreSQL restart or
    # pg_terminate_backend used to fail the next read (and the arc or step that made it).
    from noetl.store.base import ResultRecord

    async def scenario() -> None:
        async with PostgresStore(fresh_database) as store:
            await store.put_result(ResultRecord("r1", b"[1]", "0" * 64, 3))
            assert store.read_result_slice("r1", 0, 3) == b"[1]"
            with psycopg.connect(fresh_database, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            record = store.read_result("r1")
            assert record is not None and record.data == b"[1]"

    asyncio.run(scenario())


_READ_ONE_RESULT = """
import asyncio, json, sys
from noetl.store.postgres import PostgresStore

def memory_kb(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

async def read(url, how):
    async with PostgresStore(url) as store:
        before = memory_kb("VmRSS")
        if how == "read_result":
            record = store.read_result("big")
        elif how == "get_result":
            record = await store.get_result("big")
        else:
            record = await store.find_result("big-artifact")
        grown = memory_kb("VmHWM") - before
        print(json.dumps({"size": len(record.data), "grown_kb": grown}))

asyncio.run(read(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["read_result", "get_result", "find_result"])
def test_reading_a_big_result_holds_it_three_times_not_six(fresh_database: str, how: str) -> None:
    # Whole-result reads (templates, artifacts) used to fetch the bytea as hex text: a 40 MB
    # result took 234 MB of the worker's memory to read (the hex buffer, its text, the bytes).
    import hashlib
    import json
    import subprocess
    import sys

    from noetl.store.base import ResultRecord

    data = b"x" * 40_000_000

    async def store_it() -> None:
        async with PostgresStore(fresh_database) as store:
            await store.put_result(ResultRecord("big", data, hashlib.sha256(data).hexdigest(), len(data),
                                                name="big-artifact"))

    asyncio.run(store_it())
    reader = subprocess.run([sys.executable, "-c", _READ_ONE_RESULT, fresh_database, how], capture_output=True,
                            text=True, timeout=120, check=False)
    assert reader.returncode == 0, reader.stderr
    measured = json.loads(reader.stdout)
    assert measured["size"] == len(data)
    assert measured["grown_kb"] * 1024 < 4 * len(data), measured  # 6x before, 3x now
