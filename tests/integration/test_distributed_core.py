"""The decision core in-process, on PostgreSQL: reports that arrive together are decided together,
and batching keeps every guarantee of a single report (lease checks, duplicates, cancellation)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import psycopg
import pytest
from test_distributed_cluster import create_database

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.errors import StoreError
from noetl.runtime.distributed import DecisionCore, UnstorableReport
from noetl.store.base import ExecutionRecord
from noetl.store.postgres import PostgresStore
from noetl.store.postgres.queue import CommandQueue, LeasedCommand

LOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: loop, path: tests/core_loop}
workload: {n: 20}
workflow:
  - step: start
    loop: {in: "{{ range(workload.n) | list }}", iterator: i, spec: {mode: parallel, max_in_flight: 50}}
    tool: {kind: noop}
"""


async def ended(store: PostgresStore, execution_id: str, seconds: float = 60) -> ExecutionRecord:
    """The execution's record once it has ended: polled until a deadline (a number of polls would
    be over sooner on a loaded machine, where each query and the worker's steps take longer)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = await store.get_execution(execution_id)
        if record is not None and record.status != "running":
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} still running after {seconds} s")


class CountingStore(PostgresStore):
    """Counts decision transactions (pipelined writes, but for the one that starts an execution)."""

    transactions = 0

    async def write(self, action: str, work: Any, *, pipeline: bool = False, if_duplicate: str | None = None) -> Any:
        if pipeline and not action.startswith("starting execution"):
            self.transactions += 1
        return await super().write(action, work, pipeline=pipeline, if_duplicate=if_duplicate)


def done(leased: LeasedCommand, result: Any = None) -> Event:
    index = leased.payload["loop_index"]
    return Event(leased.execution_id, ev.CALL_DONE, node_name=leased.step, status="completed",
                 result=index * 2 if result is None else result,
                 meta={"command_id": leased.command_id, "attempt": leased.attempt, "worker": leased.lease_owner,
                       "loop_index": index})


async def start_loop(url: str, n: int) -> tuple[CountingStore, DecisionCore, str, list[LeasedCommand]]:
    store = CountingStore(url)
    await store.open()
    core = DecisionCore(store)
    execution_id = await core.submit(playbook_text=LOOP, payload={"n": n})
    leased = await CommandQueue(store).lease(owner="w1", limit=n, lease_seconds=30, now=core.now())
    assert len(leased) == n
    return store, core, execution_id, leased


def call_reports(url: str, execution_id: str) -> Counter[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT (meta->>'loop_index')::int FROM noetl.event WHERE event_type = 'call.done' "
                            "AND execution_id = %s", (int(execution_id),)).fetchall()
    return Counter(row[0] for row in rows)


def statuses(url: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        return Counter(row[0] for row in conn.execute("SELECT status FROM noetl.command").fetchall())


@pytest.fixture
def url(pg_cluster: dict[str, Any]) -> str:
    return create_database(pg_cluster)


def test_concurrent_reports_share_transactions_and_duplicates_are_ignored(url: str) -> None:
    async def scenario() -> tuple[list[Any], int, str, str]:
        store, core, execution_id, leased = await start_loop(url, 20)
        try:
            reports = [core.report(c, done(c)) for c in leased] + [core.report(c, done(c)) for c in leased[:5]]
            outcomes = await asyncio.gather(*reports)
            record = await store.get_execution(execution_id)
            assert record is not None
            return outcomes, store.transactions, record.status, execution_id
        finally:
            await store.close()

    outcomes, transactions, status, execution_id = asyncio.run(scenario())
    assert outcomes == [True] * 20 + [False] * 5
    assert transactions < 10  # the first report decides alone; the rest queue behind it
    assert status == "completed"
    assert call_reports(url, execution_id) == dict.fromkeys(range(20), 1)
    assert statuses(url) == {"done": 20}


TWO_STEPS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: chain, path: tests/core_chain}
workflow:
  - step: start
    tool: {kind: noop}
    next: [{step: end}]
  - step: end
    tool: {kind: noop}
"""


def test_reports_of_many_executions_share_one_group_transaction(url: str) -> None:
    """Group commit: the first step of 30 executions, reported together, is decided in a handful of
    transactions (not 30), each execution exactly once, and every execution moves on to its next step."""
    async def scenario() -> tuple[list[Any], int, list[str]]:
        store = CountingStore(url)
        await store.open()
        core = DecisionCore(store)
        try:
            ids = [await core.submit(playbook_text=TWO_STEPS) for _ in range(30)]
            leased = await CommandQueue(store).lease(owner="w1", limit=100, lease_seconds=30, now=core.now())
            assert sorted(c.execution_id for c in leased) == sorted(ids)
            store.transactions = 0
            events = [Event(c.execution_id, ev.CALL_DONE, node_name=c.step, status="completed", result=1,
                            meta={"command_id": c.command_id, "attempt": 1, "worker": "w1"}) for c in leased]
            outcomes = await asyncio.gather(*(core.report(c, e) for c, e in zip(leased, events, strict=True)))
            following = await CommandQueue(store).lease(owner="w1", limit=100, lease_seconds=30, now=core.now())
            return outcomes, store.transactions, sorted(c.step for c in following)
        finally:
            await store.close()

    outcomes, transactions, following = asyncio.run(scenario())
    assert outcomes == [True] * 30
    assert transactions <= 4, transactions  # the first reports lead; the rest share the next group
    assert following == ["end"] * 30
    with psycopg.connect(url) as conn:
        per_execution = conn.execute("SELECT execution_id, count(*) FROM noetl.event WHERE event_type = 'call.done' "
                                     "GROUP BY execution_id").fetchall()
    assert len(per_execution) == 30 and {count for _, count in per_execution} == {1}


def test_a_report_that_cannot_be_stored_fails_alone(url: str) -> None:
    async def scenario() -> tuple[list[Any], str]:
        store, core, execution_id, leased = await start_loop(url, 6)
        try:
            events = [done(c, float("nan")) if n == 2 else done(c) for n, c in enumerate(leased)]
            outcomes = await asyncio.gather(*(core.report(c, e) for c, e in zip(leased, events, strict=True)),
                                            return_exceptions=True)
            return outcomes, execution_id
        finally:
            await store.close()

    outcomes, execution_id = asyncio.run(scenario())
    assert isinstance(outcomes[2], UnstorableReport) and "JSON" in str(outcomes[2])
    assert outcomes[:2] + outcomes[3:] == [True] * 5
    assert call_reports(url, execution_id) == dict.fromkeys([0, 1, 3, 4, 5], 1)


def test_reports_batched_after_a_cancellation_are_not_recorded(url: str) -> None:
    async def scenario() -> tuple[list[Any], dict[str, Any], str]:
        store, core, execution_id, leased = await start_loop(url, 10)
        try:
            first = asyncio.ensure_future(core.report(leased[0], done(leased[0])))
            await asyncio.sleep(0)  # the first report takes the lock; the rest queue behind it
            cancel = asyncio.ensure_future(core.cancel(execution_id))
            await asyncio.sleep(0)
            rest = [core.report(c, done(c)) for c in leased[1:]]
            outcomes = await asyncio.gather(first, *rest)
            return outcomes, await cancel, execution_id
        finally:
            await store.close()

    outcomes, cancelled, execution_id = asyncio.run(scenario())
    assert outcomes == [True] + [False] * 9
    assert cancelled["status"] == "cancelled" and cancelled["cancelled"] is True
    assert call_reports(url, execution_id) == {0: 1}
    assert statuses(url) == {"done": 1, "cancelled": 9}


NAN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: nan, path: tests/nan}
workflow:
  - step: start
    tool: {kind: python, code: "result = float('nan')"}
"""


# jsonb holds no NUL: the report failed at every retry, the lease lapsed and the step ran again,
# three times, to end as lease_expired.
NUL_OUTPUT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: nul, path: tests/nul}
workflow:
  - step: start
    tool: {kind: shell, command: "echo ran >> RAN_FILE; printf 'a\\\\0b\\\\nnext\\\\n'"}
"""


@pytest.mark.parametrize("case", ["nan", "nul"])
def test_a_worker_fails_the_step_whose_result_cannot_be_stored(url: str, case: str, tmp_path: Any) -> None:
    from noetl.runtime.worker import Worker, WorkerOptions

    ran = tmp_path / "ran"
    logs: list[str] = []
    playbook = NAN if case == "nan" else NUL_OUTPUT.replace("RAN_FILE", str(ran))

    async def scenario() -> tuple[str, Any]:
        worker = Worker(url, WorkerOptions(name="w1", concurrency=2, poll_interval=0.05))
        running = asyncio.ensure_future(worker.run())
        store = PostgresStore(url)
        await store.open()
        try:
            execution_id = await DecisionCore(store).submit(playbook_text=playbook)
            record = await ended(store, execution_id)
            events = await store.list_events(execution_id)
            logs.extend(log.line for log in await store.list_logs(execution_id))
            return record.status, [e.error for e in events if e.event_type == ev.CALL_ERROR]
        finally:
            worker.request_stop()
            await running
            await store.close()

    status, errors = asyncio.run(scenario())
    assert status == "failed"
    assert len(errors) == 1
    if case == "nan":  # the python tool refuses it (a result error), before any store sees it
        assert errors[0]["kind"] == "result" and "nan at $ is not JSON" in errors[0]["message"]
    else:
        assert errors[0]["kind"] == "unstorable_result"
        assert "$.stdout: NUL characters (\\u0000) cannot be stored in PostgreSQL" in errors[0]["message"]
        assert ran.read_text() == "ran\n"  # once
        assert logs == ["a\ufffdb", "next"]  # the lines kept, the NUL shown as U+FFFD


CHAIN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: chain, path: tests/core_chain}
workflow:
  - step: start
    tool: {kind: noop}
    next: [{step: second}]
  - step: second
    tool: {kind: noop}
"""


class FakeAffinity:
    """A worker with ``slots`` free slots, recording what the core started on it."""

    name = "w1"

    def __init__(self, slots: int) -> None:
        self.slots, self.reserved = slots, 0
        self.started: list[LeasedCommand] = []

    def lease_seconds(self) -> float:
        return 30.0

    def reserve(self, wanted: int) -> int:
        count = min(wanted, self.slots - self.reserved)
        self.reserved += count
        return count

    def unreserve(self, count: int) -> None:
        self.reserved -= count

    def start_leased(self, leased: list[LeasedCommand]) -> None:
        self.reserved -= len(leased)
        self.slots -= len(leased)
        self.started.extend(leased)


def command_rows(url: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT step, status, attempt, lease_owner, lease_expires_at IS NOT NULL FROM noetl.command")
        return {row[0]: row[1:] for row in rows.fetchall()}


@pytest.mark.parametrize("slots", [1, 0])
def test_a_deciding_worker_leases_the_next_command_to_itself_and_the_reaper_requeues_it(url: str, slots: int) -> None:
    from datetime import timedelta

    async def scenario() -> tuple[dict[str, tuple[Any, ...]], list[LeasedCommand], list[str]]:
        store = PostgresStore(url)
        await store.open()
        try:
            affinity = FakeAffinity(slots)
            core = DecisionCore(store, affinity=affinity)
            execution_id = await core.submit(playbook_text=CHAIN)
            queue = CommandQueue(store)
            first = await queue.lease(owner="w1", limit=1, lease_seconds=30, now=core.now())
            event = Event(execution_id, ev.CALL_DONE, node_name="start", status="completed", result=1,
                          meta={"command_id": first[0].command_id, "attempt": 1, "worker": "w1"})
            assert await core.report(first[0], event)
            rows = command_rows(url)
            # The worker "crashes": its lease runs out and the reaper hands the command back.
            requeued = await queue.requeue_expired(max_attempts=3, now=core.now() + timedelta(seconds=60))
            return rows, affinity.started, requeued
        finally:
            await store.close()

    rows, started, requeued = asyncio.run(scenario())
    if slots:
        assert rows["second"] == ("leased", 1, "w1", True)
        assert [(c.step, c.attempt, c.lease_owner, c.payload["as_of"] > 0) for c in started] == [
            ("second", 1, "w1", True)]
        assert requeued == [started[0].command_id]
    else:
        assert rows["second"] == ("queued", 0, None, False)
        assert started == [] and requeued == []
    assert command_rows(url)["second"][0] == "queued"


LONG_CHAIN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: long_chain, path: tests/core_long_chain}
workflow:
  - step: s0
    tool: {kind: noop}
    next: [{step: s1}]
  - step: s1
    tool: {kind: noop}
    next: [{step: s2}]
  - step: s2
    tool: {kind: noop}
    next: [{step: s3}]
  - step: s3
    tool: {kind: noop}
"""


def test_a_busy_worker_keeps_its_chains_without_going_through_the_queue(url: str) -> None:
    """A worker whose every slot is taken (concurrency 1, one chain) hands the slot of the command it
    reports to the step that follows: the next steps are inserted leased to it by the decisions, and
    only the first step is ever leased from the queue."""
    from noetl.runtime.worker import Worker, WorkerOptions

    async def scenario() -> tuple[list[str], str]:
        worker = Worker(url, WorkerOptions(name="w1", concurrency=1, poll_interval=0.05))
        leased_from_queue: list[str] = []
        lease = worker.queue.lease

        async def counting_lease(**kwargs: Any) -> list[LeasedCommand]:
            commands = await lease(**kwargs)
            leased_from_queue.extend(c.step for c in commands)
            return commands

        worker.queue.lease = counting_lease  # type: ignore[method-assign]
        running = asyncio.create_task(worker.run())
        store = PostgresStore(url)
        await store.open()
        try:
            await asyncio.sleep(0.3)  # the worker has opened its store and started leasing
            execution_id = await DecisionCore(store).submit(playbook_text=LONG_CHAIN)
            record = await ended(store, execution_id)
            return leased_from_queue, record.status
        finally:
            worker.stop.set()
            await asyncio.wait_for(running, timeout=30)
            await store.close()

    leased_from_queue, status = asyncio.run(scenario())
    assert status == "completed"
    assert leased_from_queue == ["s0"]
    rows = command_rows(url)
    assert {step: row[:3] for step, row in rows.items()} == {f"s{n}": ("done", 1, "w1") for n in range(4)}


def test_a_worker_leases_from_the_queue_only_when_work_may_be_waiting_there(url: str) -> None:
    """A finished step frees a slot, but the steps of the worker's own chains never pass through the
    queue: only a notification (or the poll) sends a lease statement, not every finished step."""
    from noetl.runtime.worker import Worker, WorkerOptions

    async def scenario() -> tuple[int, str]:
        worker = Worker(url, WorkerOptions(name="w1", concurrency=2, poll_interval=30))
        lease = worker.queue.lease
        calls_after_first: list[int] = []

        async def counting_lease(**kwargs: Any) -> list[LeasedCommand]:
            commands = await lease(**kwargs)
            if calls_after_first or commands:
                calls_after_first.append(len(commands))
            return commands

        worker.queue.lease = counting_lease  # type: ignore[method-assign]
        running = asyncio.create_task(worker.run())
        store = PostgresStore(url)
        await store.open()
        try:
            await asyncio.sleep(0.3)
            execution_id = await DecisionCore(store).submit(playbook_text=LONG_CHAIN)
            record = await ended(store, execution_id)
            return len(calls_after_first), record.status
        finally:
            worker.request_stop()
            await asyncio.wait_for(running, timeout=30)
            await store.close()

    calls, status = asyncio.run(scenario())
    assert status == "completed"
    # The lease that found s0, and at most one more for the notification of its submission (the
    # steps after s0 each freed a slot: 3 more leases without the distinction).
    assert calls <= 2, calls


def test_a_worker_heartbeat_under_way_when_a_frame_starts_leaves_the_frame_its_own_lease(url: str) -> None:
    """The worker's heartbeat chooses its commands, then stores their renewal. A cursor frame that
    starts in between takes its command's lease over: the frame's renewal must land after the
    worker's, or the worker's short lease (0.3 s here) replaces the frame's (5 s) until the frame's
    next beat, and the frame's command can be re-queued under it while it runs."""
    from noetl.runtime.worker import Worker, WorkerOptions, _current_command

    async def scenario() -> float:
        store, _, _, leased = await start_loop(url, 1)
        command_id = leased[0].command_id
        worker = Worker(url, WorkerOptions(name="w1", lease_seconds=0.3, poll_interval=30))
        await worker.store.open()
        renew = worker.queue.heartbeat
        worker_beat_chosen, release_worker_beat, frame_renewed = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def held_up_heartbeat(**kwargs: Any) -> set[str]:
            if kwargs["lease_seconds"] == 0.3:  # the worker's own heartbeat: held up on its way
                worker_beat_chosen.set()
                await release_worker_beat.wait()
            held = await renew(**kwargs)
            if kwargs["lease_seconds"] == 5:
                frame_renewed.set()
            return held

        worker.queue.heartbeat = held_up_heartbeat  # type: ignore[method-assign]
        worker.in_flight[command_id] = (leased[0], asyncio.create_task(asyncio.sleep(60)))
        beating = asyncio.create_task(worker._heartbeat())
        frame_ends = asyncio.Event()

        async def frame() -> None:
            _current_command.set((command_id, [0]))
            async with worker.keep_frame_alive(lease_seconds=5, heartbeat_seconds=30):
                await frame_ends.wait()

        try:
            await asyncio.wait_for(worker_beat_chosen.wait(), 10)
            running = asyncio.create_task(frame())
            with contextlib.suppress(TimeoutError):  # the frame would renew at once, were it not held back
                await asyncio.wait_for(frame_renewed.wait(), 1)
            release_worker_beat.set()
            await asyncio.wait_for(frame_renewed.wait(), 10)
            with psycopg.connect(url) as conn:
                window = conn.execute("SELECT extract(epoch FROM lease_expires_at - heartbeat_at) FROM noetl.command "
                                      "WHERE command_id = %s", (command_id,)).fetchone()
            frame_ends.set()
            await asyncio.wait_for(running, 10)
            assert window is not None
            return float(window[0])
        finally:
            worker.drained.set()
            await asyncio.wait_for(beating, 10)
            for _, task in worker.in_flight.values():
                task.cancel()
            await worker.store.close()
            await store.close()

    assert asyncio.run(scenario()) == 5.0


def test_a_frame_cancelled_while_its_last_renewal_is_stored_hands_its_lease_back(url: str) -> None:
    """A frame that ends waits for its renewal under way; cancelled meanwhile (a stopping worker, a
    cancelled execution), it must still give its command back to the worker's heartbeat, or a later
    lease of the same command by this worker is never renewed."""
    from noetl.runtime.worker import Worker, WorkerOptions, _current_command

    async def scenario() -> bool:
        store, _, _, leased = await start_loop(url, 1)
        command_id = leased[0].command_id
        worker = Worker(url, WorkerOptions(name="w1", lease_seconds=30, poll_interval=30))
        await worker.store.open()
        renew = worker.queue.heartbeat
        frame_renewing, release_renewal, frame_ends = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def held_up_heartbeat(**kwargs: Any) -> set[str]:
            frame_renewing.set()
            await release_renewal.wait()
            return await renew(**kwargs)

        worker.queue.heartbeat = held_up_heartbeat  # type: ignore[method-assign]

        async def frame() -> None:
            _current_command.set((command_id, [0]))
            async with worker.keep_frame_alive(lease_seconds=5, heartbeat_seconds=30):
                await frame_ends.wait()

        try:
            running = asyncio.create_task(frame())
            await asyncio.wait_for(frame_renewing.wait(), 10)
            frame_ends.set()
            await asyncio.sleep(0.1)  # the frame now waits for its renewal
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(running, 10)
            return command_id in worker.own_leases
        finally:
            release_renewal.set()
            await worker.store.close()
            await store.close()

    assert asyncio.run(scenario()) is False


def test_starting_an_execution_whose_id_exists_is_refused_and_changes_nothing(url: str) -> None:
    """A re-run command submits its child under the id it derived before: the second start is
    refused by name, and the first execution's log and commands stay as they were."""
    def counts() -> tuple[int, int]:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT (SELECT count(*) FROM noetl.event_log), "
                               "(SELECT count(*) FROM noetl.command)").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    async def scenario() -> tuple[str, tuple[int, int], tuple[int, int]]:
        store = PostgresStore(url)
        await store.open()
        try:
            execution_id = await DecisionCore(store).submit(playbook_text=LOOP, payload={"n": 3})
            before = counts()
            with pytest.raises(StoreError) as refused:
                await DecisionCore(store).submit(playbook_text=LOOP, payload={"n": 5}, execution_id=execution_id)
            return str(refused.value), before, counts()
        finally:
            await store.close()

    message, before, after = asyncio.run(scenario())
    assert message.startswith("execution ") and message.endswith(" already exists"), message
    assert after == before
    assert before[1] == 3  # the first start queued its 3 iterations; the refused one queued nothing
