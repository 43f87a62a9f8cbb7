"""The store conformance suite: one set of checks every Store backend must pass.

Use it by subclassing :class:`StoreConformance` in a ``Test*`` class and implementing
``make_store``. Each check is an ``async def`` taking a fresh, opened store; ``store_test`` turns it
into a plain pytest test that runs under ``asyncio.run`` (no pytest-asyncio needed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from noetl.engine.events import CALL_DONE, PLAYBOOK_INITIALIZED, STEP_ENTER, STEP_EXIT, Event
from noetl.errors import ExecutionEnded, NotFoundError, StoreError
from noetl.store.base import (
    CredentialRecord,
    ExecutionRecord,
    ExecutionState,
    FireRecord,
    HookRecord,
    LogRecord,
    ResultRecord,
    ScheduleRecord,
    Store,
    TriggerRecord,
)

Clock = Callable[[], datetime]
Check = Callable[[Any, Store], Awaitable[None]]

T0 = "2024-05-01T10:00:00+00:00"


class FakeClock:
    """Returns 2024-01-01T00:00:00Z, then one second later on every call."""

    def __init__(self) -> None:
        self.current = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        now = self.current
        self.current += timedelta(seconds=1)
        return now


def store_test(check: Check) -> Callable[[Any], None]:
    """Turn ``async def check(self, store)`` into a sync test that owns its stores' lifetime."""

    def test(self: StoreConformance) -> None:
        asyncio.run(self._run_check(check))

    # Copy the name by hand: functools.wraps would expose the `store` parameter to pytest as a fixture.
    test.__name__ = check.__name__
    test.__qualname__ = check.__qualname__
    test.__doc__ = check.__doc__
    return test


def event(event_type: str, node: str | None = None, **fields: Any) -> Event:
    fields.setdefault("created_at", T0)
    return Event(execution_id="", event_type=event_type, node_name=node, **fields)


def step_events(node: str, result: Any = None) -> list[Event]:
    return [
        event(STEP_ENTER, node, status="running"),
        event(CALL_DONE, node, status="completed", result=result, meta={"attempt": 1}),
        event(STEP_EXIT, node, status="completed", result=result),
    ]


def execution(execution_id: str = "exec-1", **fields: Any) -> ExecutionRecord:
    fields.setdefault("path", "examples/hello")
    fields.setdefault("started_at", T0)
    return ExecutionRecord(execution_id=execution_id, **fields)


async def started(store: Store, execution_id: str = "exec-1", **fields: Any) -> list[Event]:
    return await store.create_execution(
        execution(execution_id, **fields), [event(PLAYBOOK_INITIALIZED, status="running")]
    )


def summary(events: list[Event]) -> list[tuple[int, str, str | None]]:
    return [(e.event_id, e.event_type, e.node_name) for e in events]


class StoreConformance:
    """Base class of a backend's conformance tests."""

    # False for backends whose instances share nothing (the memory store): durability and
    # multi-process checks are skipped for them.
    persistent: ClassVar[bool] = True

    async def make_store(self, *, clock: Clock | None = None) -> Store:
        """Return a new, opened store on this test's database. Called more than once in a test,
        it must return stores on the *same* database (as two processes would see it)."""
        raise NotImplementedError

    async def open_store(self, *, clock: Clock | None = None) -> Store:
        """``make_store`` plus closing at the end of the test."""
        store = await self.make_store(clock=clock)
        self._opened.append(store)
        return store

    async def _run_check(self, check: Check) -> None:
        self._opened: list[Store] = []
        try:
            await check(self, await self.open_store())
        finally:
            for store in reversed(self._opened):
                await store.close()

    def require_persistence(self) -> None:
        if not self.persistent:
            pytest.skip("the backend keeps nothing between store instances")

    # executions and events -------------------------------------------------------------
    @store_test
    async def test_create_execution_stamps_events_with_increasing_ids(self, store: Store) -> None:
        record = execution(payload={"name": "world"}, playbook="apiVersion: noetl.io/v2\n")
        events = [event(PLAYBOOK_INITIALIZED, status="running"), event("workflow.initialized")]
        stamped = await store.create_execution(record, events)
        assert [(e.event_id, e.execution_id) for e in stamped] == [(1, "exec-1"), (2, "exec-1")]
        assert await store.list_events("exec-1") == stamped
        assert await store.get_execution("exec-1") == record

    @store_test
    async def test_appends_in_batches_keep_order_and_numbering(self, store: Store) -> None:
        await started(store)
        first = await store.append_events("exec-1", step_events("a"))
        second = await store.append_events("exec-1", [event(STEP_ENTER, "b")])
        third = await store.append_events("exec-1", step_events("c")[1:])
        assert [e.event_id for e in first + second + third] == [2, 3, 4, 5, 6, 7]
        assert summary(await store.list_events("exec-1")) == [
            (1, PLAYBOOK_INITIALIZED, None),
            (2, STEP_ENTER, "a"),
            (3, CALL_DONE, "a"),
            (4, STEP_EXIT, "a"),
            (5, STEP_ENTER, "b"),
            (6, CALL_DONE, "c"),
            (7, STEP_EXIT, "c"),
        ]

    @store_test
    async def test_event_ids_are_per_execution(self, store: Store) -> None:
        await started(store, "exec-1")
        await started(store, "exec-2")
        await store.append_events("exec-1", step_events("a"))
        appended = await store.append_events("exec-2", [event(STEP_ENTER, "x")])
        assert appended[0].event_id == 2
        assert [e.event_id for e in await store.list_events("exec-1")] == [1, 2, 3, 4]

    @store_test
    async def test_appending_nothing_is_allowed(self, store: Store) -> None:
        await started(store)
        assert await store.append_events("exec-1", []) == []
        assert [e.event_id for e in await store.append_events("exec-1", [event(STEP_ENTER, "a")])] == [2]

    @store_test
    async def test_list_events_after_id_and_limit(self, store: Store) -> None:
        await started(store)
        await store.append_events("exec-1", step_events("a") + step_events("b"))
        assert [e.event_id for e in await store.list_events("exec-1", after_id=4)] == [5, 6, 7]
        assert [e.event_id for e in await store.list_events("exec-1", limit=2)] == [1, 2]
        assert [e.event_id for e in await store.list_events("exec-1", after_id=2, limit=3)] == [3, 4, 5]
        assert await store.list_events("exec-1", after_id=7) == []
        assert await store.list_events("exec-1", limit=0) == []
        assert await store.list_events("no-such-execution") == []

    @store_test
    async def test_append_updates_the_execution_row(self, store: Store) -> None:
        await started(store)
        await store.append_events("exec-1", step_events("a"), update={"result": {"n": 1}})
        record = await store.get_execution("exec-1")
        assert record is not None
        assert (record.status, record.result, record.ended_at) == ("running", {"n": 1}, None)

        update = {"status": "failed", "error": "step a failed", "ended_at": "2024-05-01T10:00:05+00:00"}
        await store.append_events("exec-1", [event("playbook.failed")], update=update)
        record = await store.get_execution("exec-1")
        assert record is not None
        assert (record.status, record.error, record.ended_at) == (
            "failed",
            "step a failed",
            update["ended_at"],
        )
        assert record.result == {"n": 1}  # fields not named in update keep their value

    @store_test
    async def test_update_can_clear_a_field(self, store: Store) -> None:
        await started(store, result={"old": True})
        await store.append_events("exec-1", [], update={"result": None})
        record = await store.get_execution("exec-1")
        assert record is not None and record.result is None

    @store_test
    async def test_failed_append_leaves_events_and_row_untouched(self, store: Store) -> None:
        await started(store)
        before = await store.append_events("exec-1", step_events("a", result={"ok": 1}))
        bad_batch = [event(STEP_ENTER, "b"), event(CALL_DONE, "b", result={"rows": {1, 2}})]
        with pytest.raises(StoreError, match="JSON"):
            await store.append_events("exec-1", bad_batch, update={"status": "completed"})
        events = await store.list_events("exec-1")
        assert [e.event_id for e in events] == [1, 2, 3, 4]
        assert events[1:] == before
        record = await store.get_execution("exec-1")
        assert record is not None and record.status == "running"
        # numbering goes on without a gap after the failure
        assert [e.event_id for e in await store.append_events("exec-1", [event(STEP_ENTER, "b")])] == [5]

    @store_test
    async def test_not_a_number_is_refused(self, store: Store) -> None:
        await started(store)
        with pytest.raises(StoreError):
            await store.append_events("exec-1", [event(CALL_DONE, "a", result=float("nan"))])
        assert len(await store.list_events("exec-1")) == 1

    @store_test
    async def test_unknown_update_field_is_refused(self, store: Store) -> None:
        await started(store)
        with pytest.raises(StoreError, match="path"):
            await store.append_events("exec-1", [event(STEP_ENTER, "a")], update={"path": "elsewhere"})
        assert len(await store.list_events("exec-1")) == 1

    @store_test
    async def test_event_without_created_at_is_refused(self, store: Store) -> None:
        await started(store)
        with pytest.raises(StoreError, match="created_at"):
            await store.append_events("exec-1", [event(STEP_ENTER, "a", created_at="")])

    @store_test
    async def test_event_of_another_execution_is_refused(self, store: Store) -> None:
        await started(store)
        stray = Event(execution_id="exec-2", event_type=STEP_ENTER, created_at=T0)
        with pytest.raises(StoreError, match="exec-2"):
            await store.append_events("exec-1", [stray])

    @store_test
    async def test_append_to_unknown_execution_is_not_found(self, store: Store) -> None:
        with pytest.raises(NotFoundError, match="ghost"):
            await store.append_events("ghost", [event(STEP_ENTER, "a")])
        with pytest.raises(NotFoundError, match="ghost"):
            await store.append_events("ghost", [], update={"status": "failed"})
        assert await store.get_execution("ghost") is None

    @store_test
    async def test_duplicate_execution_is_refused_and_original_kept(self, store: Store) -> None:
        await started(store, path="first")
        with pytest.raises(StoreError):
            await store.create_execution(execution(path="second"), [event(PLAYBOOK_INITIALIZED)])
        record = await store.get_execution("exec-1")
        assert record is not None and record.path == "first"
        assert len(await store.list_events("exec-1")) == 1

    @store_test
    async def test_get_unknown_execution_is_none(self, store: Store) -> None:
        assert await store.get_execution("nope") is None

    @store_test
    async def test_execution_state_follows_status_and_last_event(self, store: Store) -> None:
        """What a watcher and a live console page poll: the status, last event id and end."""
        await started(store)
        assert await store.get_execution_state("exec-1") == ExecutionState("running", 1, None)
        await store.append_events("exec-1", step_events("a"))
        ended = "2024-05-01T10:00:05+00:00"
        await store.append_events("exec-1", [event("playbook.completed")],
                                  update={"status": "completed", "ended_at": ended})
        assert await store.get_execution_state("exec-1") == ExecutionState("completed", 5, ended)
        assert await store.get_execution_state("nope") is None

    @store_test
    async def test_a_number_past_64_bits_reads_as_far_beyond_every_row(self, store: Store) -> None:
        """`?after=99999999999999999999999` on a console page was a 500 on SQLite (its integers are
        64-bit): no event, log line or catalog version is that far, as on the other stores."""
        await started(store)
        await store.register_catalog(path="p", kind="Playbook", content="x")
        far = 10**23
        assert await store.list_events("exec-1", after_id=far) == []
        assert await store.list_event_heads("exec-1", after_id=far) == []
        assert await store.list_logs("exec-1", after_id=far) == []
        assert await store.get_catalog("p", far) is None
        assert len(await store.list_events("exec-1", after_id=-far)) == 1

    @store_test
    async def test_event_heads_leave_out_what_a_loop_calls_fold_does_not_read(self, store: Store) -> None:
        """The console folds a 10,000-item loop's log from heads: a loop call without its result and
        with only loop_index, duration and the lines it carries (unless streamed)."""
        await started(store)
        loop_calls = [
            event(CALL_DONE, "a", status="completed", result={"rows": [1, 2]},
                  meta={"loop_index": 0, "duration": 0.25, "command_id": "c1", "logs": ["hi"], "attempt": 1}),
            event("call.error", "a", status="failed", result={"x": 1}, error={"kind": "python", "message": "boom"},
                  meta={"loop_index": 1, "duration": 0.5, "logs_streamed": True, "logs": ["streamed"]}),
            event(CALL_DONE, "b", status="completed", result={"single": True}, meta={"duration": 0.75, "attempt": 1}),
        ]
        await store.append_events("exec-1", loop_calls)
        heads = await store.list_event_heads("exec-1")
        whole = await store.list_events("exec-1")
        assert [h.event_id for h in heads] == [e.event_id for e in whole]
        assert heads[0] == whole[0]  # not a loop call: the whole event
        done, failed, single = heads[1:]
        assert (done.result, done.meta) == (None, {"loop_index": 0, "duration": 0.25, "logs": ["hi"]})
        assert (failed.result, failed.meta) == (None, {"loop_index": 1, "duration": 0.5, "logs_streamed": True})
        assert failed.error == {"kind": "python", "message": "boom"} and failed.status == "failed"
        assert single == whole[3]
        assert [h.event_id for h in await store.list_event_heads("exec-1", after_id=1, limit=2)] == [2, 3]

    @store_test
    async def test_list_executions_filters_and_orders_newest_first(self, store: Store) -> None:
        await started(store, "parent", started_at="2024-05-01T10:00:00+00:00")
        await started(store, "child-1", parent_execution_id="parent", started_at="2024-05-01T10:00:01+00:00")
        await started(store, "child-2", parent_execution_id="parent", started_at="2024-05-01T10:00:02+00:00")
        await started(store, "other", started_at="2024-05-01T10:00:03+00:00")
        await store.append_events("child-1", [], update={"status": "completed"})

        def ids(records: list[ExecutionRecord]) -> list[str]:
            return [r.execution_id for r in records]

        assert ids(await store.list_executions()) == ["other", "child-2", "child-1", "parent"]
        assert ids(await store.list_executions(limit=2)) == ["other", "child-2"]
        assert ids(await store.list_executions(status="running")) == ["other", "child-2", "parent"]
        assert ids(await store.list_executions(status="completed")) == ["child-1"]
        assert ids(await store.list_executions(parent_execution_id="parent")) == ["child-2", "child-1"]
        running_children = await store.list_executions(status="running", parent_execution_id="parent")
        assert ids(running_children) == ["child-2"]

    @store_test
    async def test_list_executions_by_path_time_and_page(self, store: Store) -> None:
        await started(store, "a", path="etl/Daily_Load", started_at="2024-05-01T10:00:00+00:00")
        await started(store, "b", path="etl/hourly", started_at="2024-05-01T11:00:00+00:00")
        await started(store, "c", path="ops/daily_report", started_at="2024-05-01T10:30:00+00:00")
        await started(store, "d", path="etl/daily_load", started_at="2024-05-01T13:00:00+00:00")
        await store.append_events("a", [], update={"status": "completed", "ended_at": "2024-05-01T14:00:00+00:00"})
        await store.append_events("b", [], update={"status": "completed", "ended_at": "2024-05-01T11:30:00+00:00"})

        def ids(records: list[ExecutionRecord]) -> list[str]:
            return [r.execution_id for r in records]

        assert ids(await store.list_executions(path="DAILY")) == ["d", "c", "a"]  # substring, any case
        assert ids(await store.list_executions(path="etl/daily_load")) == ["d", "a"]
        assert ids(await store.list_executions(started_since="2024-05-01T10:45:00Z")) == ["d", "b"]
        assert ids(await store.list_executions(started_since="2024-05-01T12:30:00+02:00")) == ["d", "b", "c"]
        assert ids(await store.list_executions(started_since="2024-05-01T10:30:00")) == ["d", "b", "c"]  # UTC
        assert ids(await store.list_executions(ended_since="2024-05-01T12:00:00+00:00")) == ["a"]
        assert ids(await store.list_executions(limit=2, offset=1)) == ["b", "c"]
        assert ids(await store.list_executions(path="etl", limit=1, offset=2)) == ["a"]
        assert await store.list_executions(path="nothing-like-this") == []

    @store_test
    async def test_json_roundtrips_exactly(self, store: Store) -> None:
        value = {
            "text": 'héllo wörld — 你好 🚀 "quoted" \\ back\nslash',
            "nested": {"list": [1, 2.5, -0.0, True, False, None, [], {}], "deep": {"a": {"b": {"c": [{}]}}}},
            "big": 2**62,
            "ключ": "значение",
        }
        record = execution(payload=value, result=value, playbook="name: ünïcode ✓\n")
        await store.create_execution(record, [event(PLAYBOOK_INITIALIZED, meta={"note": value})])
        stamped = await store.append_events(
            "exec-1", [event(CALL_DONE, "ünïcode", result=value, error={"detail": value}, meta={"v": value})]
        )
        events = await store.list_events("exec-1")
        assert events[1] == stamped[0]
        assert (events[1].result, events[1].error, events[1].meta) == (value, {"detail": value}, {"v": value})
        assert events[0].meta == {"note": value}
        assert await store.get_execution("exec-1") == record

    @store_test
    async def test_stored_values_do_not_follow_later_mutation(self, store: Store) -> None:
        result = {"items": [1, 2]}
        await started(store)
        await store.append_events("exec-1", [event(CALL_DONE, "a", result=result)])
        result["items"].append(3)
        read = await store.list_events("exec-1")
        assert read[1].result == {"items": [1, 2]}
        read[1].result["items"].append(4)
        assert (await store.list_events("exec-1"))[1].result == {"items": [1, 2]}

    @store_test
    async def test_closed_store_refuses_work(self, store: Store) -> None:
        await store.close()
        with pytest.raises(StoreError):
            await store.get_execution("exec-1")

    @store_test
    async def test_transition_changes_status_only_from_the_given_statuses(self, store: Store) -> None:
        await started(store, owner="host:1:10")
        assert (await store.get_execution("exec-1")).owner == "host:1:10"  # type: ignore[union-attr]
        failed = {"status": "failed", "error": "abandoned", "ended_at": T0}
        # another owner took it over meanwhile: nothing changes
        assert await store.transition_execution("exec-1", [event("playbook.failed")], from_statuses=("running",),
                                                update=failed, expect_owner="host:2:20") is None
        assert await store.transition_execution("exec-1", [event("playbook.completed")],
                                                from_statuses=("failed",), update=failed) is None
        assert len(await store.list_events("exec-1")) == 1
        stamped = await store.transition_execution("exec-1", [event("playbook.failed")], from_statuses=("running",),
                                                   update=failed, expect_owner="host:1:10")
        assert stamped is not None and [e.event_id for e in stamped] == [2]
        reopen = {"status": "running", "error": None, "ended_at": None}
        stamped = await store.transition_execution("exec-1", [event("execution.resumed")],
                                                   from_statuses=("failed", "cancelled"), update=reopen,
                                                   owner="host:3:30")
        assert stamped is not None and [e.event_id for e in stamped] == [3]
        record = await store.get_execution("exec-1")
        assert record is not None
        assert (record.status, record.error, record.ended_at, record.owner) == ("running", None, None, "host:3:30")
        # a second resume of the same execution loses
        assert await store.transition_execution("exec-1", [event("execution.resumed")],
                                                from_statuses=("failed", "cancelled"), update=reopen) is None
        assert [e.event_id for e in await store.append_events("exec-1", [event(STEP_ENTER, "a")])] == [4]
        with pytest.raises(NotFoundError):
            await store.transition_execution("nope", [], from_statuses=("running",), update={})

    # schedules ---------------------------------------------------------------------------
    @store_test
    async def test_schedules_are_stored_changed_and_deleted(self, store: Store) -> None:
        record = ScheduleRecord(name="nightly", path="examples/hello", cron="0 2 * * *", timezone="Europe/Berlin",
                                payload={"k": [1, 2]}, overlap="queue", catchup="all", created_at=T0)
        stored = await store.put_schedule(record)
        assert stored == record
        assert await store.update_schedule("nightly", cursor="2024-05-02T00:00:00+00:00", enabled=False)
        assert not await store.update_schedule("nope", enabled=True)
        # Added again: the definition changes, the cursor and created_at stay.
        again = await store.put_schedule(ScheduleRecord(name="nightly", path="examples/hello", cron="0 3 * * *",
                                                        created_at="2030-01-01T00:00:00+00:00"))
        assert (again.cron, again.enabled, again.cursor, again.created_at) == (
            "0 3 * * *", True, "2024-05-02T00:00:00+00:00", T0)
        await store.put_schedule(ScheduleRecord(name="hourly", path="p", cron="0 * * * *"))
        assert [s.name for s in await store.list_schedules()] == ["hourly", "nightly"]
        assert await store.claim_fire(FireRecord("nightly", "2024-05-03T01:00:00+00:00", "started", "e1"))
        assert await store.delete_schedule("nightly")
        assert not await store.delete_schedule("nightly")
        assert await store.get_schedule("nightly") is None
        assert await store.list_fires("nightly") == []

    @store_test
    async def test_a_fire_time_is_claimed_once(self, store: Store) -> None:
        await store.put_schedule(ScheduleRecord(name="s", path="p", cron="* * * * *", created_at=T0))
        first = FireRecord("s", "2024-05-01T10:01:00+00:00", "started", "e1", created_at=T0)
        assert await store.claim_fire(first)
        assert not await store.claim_fire(FireRecord("s", first.scheduled_for, "started", "e2"))
        assert await store.claim_fire(FireRecord("s", "2024-05-01T10:02:00+00:00", "queued", created_at=T0))
        assert await store.list_fires("s") == [
            FireRecord("s", "2024-05-01T10:02:00+00:00", "queued", None, T0), first]
        assert await store.start_queued_fire("s", "2024-05-01T10:02:00+00:00", "e3")
        assert not await store.start_queued_fire("s", "2024-05-01T10:02:00+00:00", "e4")
        started_fires = await store.list_fires("s", status="started", limit=1)
        assert [(f.scheduled_for, f.execution_id) for f in started_fires] == [("2024-05-01T10:02:00+00:00", "e3")]
        assert await store.try_scheduler_lock()

    # hooks -------------------------------------------------------------------------------
    @store_test
    async def test_hooks_are_stored_replaced_and_deleted(self, store: Store) -> None:
        record = HookRecord(name="github", path="examples/hello", secret="s3", token_sha256="",
                            payload_template={"ref": "{{ body.ref }}", "n": [1, None]}, created_at=T0)
        assert await store.put_hook(record) == record
        again = await store.put_hook(HookRecord(name="github", path="examples/other", token_sha256="ab",
                                                created_at="2030-01-01T00:00:00+00:00"))
        assert (again.path, again.secret, again.token_sha256, again.payload_template, again.created_at) == (
            "examples/other", "", "ab", None, T0)
        await store.put_hook(HookRecord(name="alpha", path="p"))
        assert [h.name for h in await store.list_hooks()] == ["alpha", "github"]
        assert await store.delete_hook("github")
        assert not await store.delete_hook("github")
        assert await store.get_hook("github") is None

    @store_test
    async def test_a_delivery_id_is_claimed_once_per_hook(self, store: Store) -> None:
        for name in ("a", "b"):
            await store.put_hook(HookRecord(name=name, path="p"))
        assert await store.claim_delivery("a", "d-1")
        assert not await store.claim_delivery("a", "d-1")
        assert await store.claim_delivery("b", "d-1")
        await store.delete_hook("a")
        await store.put_hook(HookRecord(name="a", path="p"))
        assert await store.claim_delivery("a", "d-1")  # a re-created hook starts with no deliveries

    # completion triggers -----------------------------------------------------------------
    @store_test
    async def test_triggers_are_stored_and_fire_once_per_execution(self, store: Store) -> None:
        record = TriggerRecord(name="t", on_path="a", on_status="completed", run_path="b", created_at=T0)
        assert await store.put_trigger(record) == record
        again = await store.put_trigger(TriggerRecord(name="t", on_path="a", on_status="failed", run_path="c"))
        assert (again.on_status, again.run_path, again.created_at) == ("failed", "c", T0)
        await store.put_trigger(TriggerRecord(name="s", on_path="a", on_status="completed", run_path="b"))
        assert [t.name for t in await store.list_triggers()] == ["s", "t"]
        assert await store.claim_trigger_fire("t", "exec-1", "exec-2")
        assert not await store.claim_trigger_fire("t", "exec-1", "exec-3")
        assert await store.claim_trigger_fire("s", "exec-1", "exec-4")
        assert await store.delete_trigger("t")
        assert not await store.delete_trigger("t")
        assert [t.name for t in await store.list_triggers()] == ["s"]

    # catalog ---------------------------------------------------------------------------
    @store_test
    async def test_catalog_versions_count_up_per_path(self, store: Store) -> None:
        store = await self.open_store(clock=FakeClock())
        entries = [
            await store.register_catalog(
                path="examples/hello", kind="Playbook", content=f"v: {n}", name="hello"
            )
            for n in (1, 2, 3)
        ]
        other = await store.register_catalog(path="examples/other", kind="Playbook", content="x")
        assert [e.version for e in entries] == [1, 2, 3]
        assert other.version == 1
        assert len({e.catalog_id for e in [*entries, other]}) == 4
        assert entries[0].created_at == "2024-01-01T00:00:00+00:00"
        assert entries[2].created_at == "2024-01-01T00:00:02+00:00"

        assert await store.get_catalog("examples/hello") == entries[2]
        assert await store.get_catalog("examples/hello", 1) == entries[0]
        assert await store.get_catalog("examples/hello", 2) == entries[1]
        assert await store.get_catalog("examples/hello", 4) is None
        assert await store.get_catalog("examples/unknown") is None

    @store_test
    async def test_catalog_list_returns_latest_per_path(self, store: Store) -> None:
        await store.register_catalog(path="b/flow", kind="Playbook", content="one")
        await store.register_catalog(path="b/flow", kind="Playbook", content="two")
        await store.register_catalog(path="a/secret", kind="Credential", content="cred")
        listed = await store.list_catalog()
        assert [(e.path, e.version, e.content) for e in listed] == [
            ("a/secret", 1, "cred"),
            ("b/flow", 2, "two"),
        ]
        assert [e.path for e in await store.list_catalog(kind="Playbook")] == ["b/flow"]
        assert [e.path for e in await store.list_catalog(kind="Credential")] == ["a/secret"]
        assert await store.list_catalog(kind="Nothing") == []

    # results stored by reference ---------------------------------------------------------
    @store_test
    async def test_results_put_get_and_a_second_put_keeps_the_first(self, store: Store) -> None:
        data = b'{"rows":[1,2,3]}' + b" " * 100_000
        await store.put_result(ResultRecord(result_id="r1", data=data, sha256="abc", size=len(data),
                                            execution_id="exec-1", step="fetch", created_at=T0))
        await store.put_result(ResultRecord(result_id="r1", data=b"{}", sha256="other", size=2, created_at=T0))
        got = await store.get_result("r1")
        assert got is not None
        assert (got.data, got.sha256, got.size, got.execution_id, got.step) == (data, "abc", len(data), "exec-1", "fetch")
        assert got.created_at.startswith("2024-05-01T10:00:00")
        assert await store.get_result("missing") is None

    @store_test
    async def test_a_results_bytes_are_read_in_part_and_past_its_end_read_nothing(self, store: Store) -> None:
        """GET /api/results?offset= reads through this: an offset past 32 bits was PostgreSQL's
        'function substring(bytea, bigint, ...) does not exist', a 503 inviting the caller to retry."""
        data = b'{"rows":[1,2,3]}'
        await store.put_result(ResultRecord(result_id="r1", data=data, sha256="s", size=len(data), created_at=T0))
        read = store.read_result_slice  # type: ignore[attr-defined]
        assert await asyncio.to_thread(read, "r1", 2, 5) == data[2:7]
        for start, length in ((len(data), 10), (3_000_000_000, 1), (10**23, 1), (0, 10**23)):
            expected = data[start:start + length]
            assert await asyncio.to_thread(read, "r1", start, length) == expected, (start, length)
        assert await asyncio.to_thread(read, "missing", 3_000_000_000, 1) is None

    @store_test
    async def test_find_result_returns_the_newest_under_a_name(self, store: Store) -> None:
        for result_id, created in (("a", "2024-05-01T10:00:00+00:00"), ("b", "2024-05-01T11:00:00+00:00"),
                                   ("c", "2024-05-01T09:00:00+00:00")):
            await store.put_result(ResultRecord(result_id=result_id, data=b"1", sha256="s", size=1,
                                                name="report", created_at=created))
        newest = await store.find_result("report")
        assert newest is not None and newest.result_id == "b"
        assert await store.find_result("nothing") is None

    @store_test
    async def test_delete_results_by_age_and_by_expiry(self, store: Store) -> None:
        rows = {"old": ("2024-05-01T08:00:00+00:00", None), "new": ("2024-05-01T12:00:00+00:00", None),
                "expired": ("2024-05-01T12:00:00+00:00", "2024-05-01T12:30:00+00:00"),
                "fresh": ("2024-05-01T12:00:00+00:00", "2024-05-02T00:00:00+00:00")}
        for result_id, (created, expires) in rows.items():
            await store.put_result(ResultRecord(result_id=result_id, data=b"1", sha256="s", size=1,
                                                created_at=created, expires_at=expires))
        assert await store.delete_results(expired_by="2024-05-01T13:00:00+00:00") == 1
        assert await store.get_result("expired") is None
        assert await store.delete_results(created_before="2024-05-01T10:00:00+00:00") == 1
        assert await store.get_result("old") is None
        assert {r for r in rows if await store.get_result(r) is not None} == {"new", "fresh"}
        assert await store.delete_results() == 0

    # logs streamed while calls run -------------------------------------------------------
    @store_test
    async def test_logs_are_listed_in_append_order_per_execution_and_step(self, store: Store) -> None:
        await started(store, "e1")
        await started(store, "e2")
        await store.append_logs([LogRecord("e1", "a", "one", created_at=T0),
                                 LogRecord("e2", "a", "other execution", created_at=T0),
                                 LogRecord("e1", "b", "two", "stderr", loop_index=3, created_at=T0)])
        await store.append_logs([LogRecord("e1", "a", "three ✓", created_at="2024-05-01T10:00:01+00:00")])
        await store.append_logs([])
        lines = await store.list_logs("e1")
        assert [(r.step, r.stream, r.loop_index, r.line) for r in lines] == [
            ("a", "stdout", None, "one"), ("b", "stderr", 3, "two"), ("a", "stdout", None, "three ✓")]
        assert lines[0].created_at == T0 and lines[0].execution_id == "e1"
        assert lines[0].log_id < lines[1].log_id < lines[2].log_id
        assert [r.line for r in await store.list_logs("e1", after_id=lines[0].log_id)] == ["two", "three ✓"]
        assert [r.line for r in await store.list_logs("e1", step="a")] == ["one", "three ✓"]
        assert [r.line for r in await store.list_logs("e1", limit=1)] == ["one"]
        assert await store.list_logs("missing") == []

    @store_test
    async def test_deleting_an_execution_deletes_its_logs(self, store: Store) -> None:
        await started(store, "old")
        await started(store, "running")
        await store.append_events("old", step_events("a"), update={"status": "completed",
                                                                   "ended_at": "2024-05-01T10:00:05+00:00"})
        await store.append_logs([LogRecord("old", "a", "gone", created_at=T0),
                                 LogRecord("running", "a", "kept", created_at=T0)])
        assert await store.delete_executions(ended_before="2024-05-02T00:00:00+00:00") == ["old"]
        assert await store.list_logs("old") == []
        assert [r.line for r in await store.list_logs("running")] == ["kept"]

    # credentials -----------------------------------------------------------------------
    @store_test
    async def test_delete_executions_removes_only_finished_ones_that_ended_before(self, store: Store) -> None:
        for execution_id, status, ended in (("old", "completed", "2024-05-01T10:00:05+00:00"),
                                            ("old-failed", "failed", "2024-05-01T10:00:06+00:00"),
                                            ("recent", "completed", "2024-05-03T10:00:00+00:00"),
                                            ("running", "running", None)):
            await started(store, execution_id)
            update = {"status": status, "ended_at": ended} if ended else None
            await store.append_events(execution_id, step_events("a"), update=update)
        deleted = await store.delete_executions(ended_before="2024-05-02T00:00:00+00:00")
        assert sorted(deleted) == ["old", "old-failed"]
        assert await store.get_execution("old") is None and await store.list_events("old") == []
        assert {r.execution_id for r in await store.list_executions()} == {"recent", "running"}
        assert len(await store.list_events("running")) == 4
        assert await store.delete_executions(ended_before="2024-05-02T00:00:00+00:00") == []

    @store_test
    async def test_credentials_put_get_list_delete(self, store: Store) -> None:
        store = await self.open_store(clock=FakeClock())
        blob = bytes(range(256))
        await store.put_credential(CredentialRecord(name="pg", type="postgres", data=blob, description="db"))
        await store.put_credential(CredentialRecord(name="api", type="bearer", data=b"\x00token"))

        pg = await store.get_credential("pg")
        assert pg == CredentialRecord(
            name="pg",
            type="postgres",
            data=blob,
            description="db",
            created_at="2024-01-01T00:00:00+00:00",
            updated_at="2024-01-01T00:00:00+00:00",
        )
        assert [c.name for c in await store.list_credentials()] == ["api", "pg"]
        assert await store.get_credential("missing") is None

        assert await store.delete_credential("api") is True
        assert await store.delete_credential("api") is False
        assert [c.name for c in await store.list_credentials()] == ["pg"]

    @store_test
    async def test_credential_overwrite_updates_and_keeps_created_at(self, store: Store) -> None:
        store = await self.open_store(clock=FakeClock())
        await store.put_credential(CredentialRecord(name="pg", type="postgres", data=b"old", description="a"))
        await store.put_credential(CredentialRecord(name="pg", type="generic", data=b"new", description="b"))
        pg = await store.get_credential("pg")
        assert pg is not None
        assert (pg.type, pg.data, pg.description) == ("generic", b"new", "b")
        assert (pg.created_at, pg.updated_at) == ("2024-01-01T00:00:00+00:00", "2024-01-01T00:00:01+00:00")
        assert len(await store.list_credentials()) == 1

    # durability and sharing (persistent backends) ----------------------------------------
    @store_test
    async def test_reopening_keeps_everything(self, store: Store) -> None:
        self.require_persistence()
        await started(store, payload={"k": "v"})
        written = await store.append_events(
            "exec-1", step_events("a", result={"r": "ü"}), update={"status": "completed"}
        )
        entry = await store.register_catalog(path="examples/hello", kind="Playbook", content="c")
        await store.put_credential(CredentialRecord(name="pg", type="postgres", data=b"\x01\x02"))
        await store.close()

        reopened = await self.open_store()
        events = await reopened.list_events("exec-1")
        assert events[1:] == written
        record = await reopened.get_execution("exec-1")
        assert record is not None and (record.status, record.payload) == ("completed", {"k": "v"})
        assert await reopened.get_catalog("examples/hello") == entry
        credential = await reopened.get_credential("pg")
        assert credential is not None and credential.data == b"\x01\x02"
        with pytest.raises(ExecutionEnded):  # completed: nothing more is recorded (SPEC section 10)
            await reopened.append_events("exec-1", [event(STEP_ENTER, "b")])
        await started(reopened, "exec-2")
        await reopened.append_events("exec-2", step_events("a"))
        await reopened.close()
        again = await self.open_store()
        appended = await again.append_events("exec-2", [event(STEP_ENTER, "b")])
        assert appended[0].event_id == 5

    @store_test
    async def test_nothing_is_recorded_after_an_execution_ended(self, store: Store) -> None:
        """Another process's cancel ends the execution: the events its own process decides after
        that are refused in their transaction, so the log ends with the cancel, as it ended."""
        await started(store)
        await store.append_events("exec-1", [event("execution.cancelled", status="cancelled")],
                                  update={"status": "cancelled", "error": "cancelled by request"})
        with pytest.raises(ExecutionEnded) as refused:
            await store.append_events("exec-1", step_events("late"), update={"status": "completed"})
        assert (refused.value.execution_id, refused.value.status, refused.value.http_status) == (
            "exec-1", "cancelled", 409)
        assert summary(await store.list_events("exec-1"))[-1] == (2, "execution.cancelled", None)
        record = await store.get_execution("exec-1")
        assert record is not None and (record.status, record.error) == ("cancelled", "cancelled by request")
        resumed = await store.transition_execution("exec-1", [event("execution.resumed")],
                                                   from_statuses=("cancelled",), update={"status": "running"})
        assert resumed is not None and resumed[0].event_id == 3  # a resume is the one way on
        assert (await store.append_events("exec-1", step_events("b")))[0].event_id == 4
        with pytest.raises(NotFoundError):
            await store.append_events("nope", step_events("a"))

    @store_test
    async def test_two_stores_on_one_database_see_each_others_writes(self, store: Store) -> None:
        self.require_persistence()
        other = await self.open_store()
        await started(store)
        await store.append_events("exec-1", step_events("a"))
        assert [e.event_id for e in await other.list_events("exec-1")] == [1, 2, 3, 4]

        # Both have appended to exec-1 before: each one's cached counter must notice the other.
        assert [e.event_id for e in await other.append_events("exec-1", step_events("b"))] == [5, 6, 7]
        assert [e.event_id for e in await store.append_events("exec-1", [event(STEP_ENTER, "c")])] == [8]
        assert [e.event_id for e in await other.append_events("exec-1", [event(STEP_ENTER, "d")])] == [9]

        await other.register_catalog(path="p", kind="Playbook", content="1")
        assert (await store.register_catalog(path="p", kind="Playbook", content="2")).version == 2
        await other.put_credential(CredentialRecord(name="pg", type="postgres", data=b"x"))
        assert await store.get_credential("pg") is not None
        record = await other.get_execution("exec-1")
        assert record is not None and record.path == "examples/hello"
