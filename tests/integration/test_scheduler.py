"""The scheduler driven by the time it is handed: DST changes, a three-hour outage under each catch-up
policy, overlap policies, restarts, and two schedulers racing on one PostgreSQL database.

Executions really run (the local runtime over a real SQLite or PostgreSQL store)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_store_postgres import fresh_database  # noqa: F401 - fixture

from noetl.scheduling.local import LocalStarter
from noetl.scheduling.scheduler import Fired, Scheduler
from noetl.store.base import ScheduleRecord, Store
from noetl.store.postgres import PostgresStore
from noetl.store.sqlite import SqliteStore

NOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: scheduled_noop}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'ok': True}"}
"""

WAITING = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: scheduled_wait}
workload: {marker: MARKER}
workflow:
  - step: start
    tool:
      kind: python
      input: {marker: "{{ workload.marker }}"}
      code: |
        import os, time
        while not os.path.exists(marker):
            time.sleep(0.01)
        result = {"ok": True}
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)


def with_sqlite(tmp_path: Path, scenario: Callable[[Store, Path], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = SqliteStore(tmp_path / "noetl.db")
        await store.open()
        try:
            return await scenario(store, tmp_path)
        finally:
            await store.close()

    return asyncio.run(main())


async def add(store: Store, tmp_path: Path, *, cron: str, created: str, zone: str = "UTC", catchup: str = "latest",
              overlap: str = "allow", text: str = NOOP) -> ScheduleRecord:
    """A schedule named "s"; overlap "allow" unless a test is about overlap (ticks come faster than
    the executions they start get to run)."""
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(text.replace("MARKER", str(tmp_path / "go")))
    return await store.put_schedule(ScheduleRecord(name="s", path=str(playbook), cron=cron, timezone=zone,
                                                   catchup=catchup, overlap=overlap, created_at=created))


async def tick_every(scheduler: Scheduler, start: datetime, end: datetime, step: timedelta) -> list[Fired]:
    fired: list[Fired] = []
    now = start
    while now <= end:
        fired.extend(await scheduler.tick(now))
        now += step
    return fired


def started(fired: list[Fired]) -> list[str]:
    return [f.scheduled_for for f in fired if f.status == "started"]


def test_daily_schedule_across_the_spring_forward_change(tmp_path: Path) -> None:
    async def scenario(store: Store, tmp: Path) -> None:
        await add(store, tmp, cron="30 2 * * *", zone="Europe/Berlin", created="2026-03-27T00:00:00+00:00")
        starter = LocalStarter(store)
        fired = await tick_every(Scheduler(store, starter), at("2026-03-27T00:00:00"), at("2026-03-30T23:59:00"),
                                 timedelta(minutes=1))
        await starter.wait()
        # 02:30 local; on 29 March 02:30 does not exist in Berlin and the fire time is 03:00 CEST.
        assert started(fired) == ["2026-03-27T01:30:00+00:00", "2026-03-28T01:30:00+00:00",
                                  "2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]
        for f in fired:
            events = await store.list_events(str(f.execution_id))
            assert events[0].meta["scheduled_for"] == f.scheduled_for and events[0].meta["schedule"] == "s"
            assert (await store.get_execution(str(f.execution_id))).status == "completed"  # type: ignore[union-attr]

    with_sqlite(tmp_path, scenario)


def test_hourly_schedule_fires_at_both_two_oclocks_of_the_fall_back_night(tmp_path: Path) -> None:
    async def scenario(store: Store, tmp: Path) -> None:
        await add(store, tmp, cron="0 * * * *", zone="Europe/Berlin", created="2026-10-24T23:30:00+00:00")
        starter = LocalStarter(store)
        fired = await tick_every(Scheduler(store, starter), at("2026-10-24T23:30:00"), at("2026-10-25T02:30:00"),
                                 timedelta(seconds=30))
        await starter.wait()
        # 02:00 CEST, 02:00 CET, 03:00 CET: the two 02:00s are an hour apart, as the wall clock shows them.
        assert started(fired) == ["2026-10-25T00:00:00+00:00", "2026-10-25T01:00:00+00:00",
                                  "2026-10-25T02:00:00+00:00"]

    with_sqlite(tmp_path, scenario)


@pytest.mark.parametrize(("catchup", "expected"), [
    ("none", []),
    ("latest", ["2026-05-01T13:00:00+00:00"]),
    ("all", [f"2026-05-01T{h:02d}:{m:02d}:00+00:00" for h in (10, 11, 12, 13) for m in (0, 15, 30, 45)
             if "10:15" <= f"{h:02d}:{m:02d}" <= "13:00"]),
])
def test_a_three_hour_outage_under_each_catchup_policy(tmp_path: Path, catchup: str, expected: list[str]) -> None:
    async def scenario(store: Store, tmp: Path) -> None:
        await add(store, tmp, cron="*/15 * * * *", catchup=catchup, created="2026-05-01T09:59:00+00:00")
        starter = LocalStarter(store)
        before = await Scheduler(store, starter).tick(at("2026-05-01T10:00:20"))
        assert started(before) == ["2026-05-01T10:00:00+00:00"]
        # The scheduler is down from 10:00:20 to 13:05; a new one (a restart) takes over.
        after = await Scheduler(store, starter).tick(at("2026-05-01T13:05:00"))
        assert started(after) == expected
        # A tick again at the same instant (another restart) starts nothing twice.
        assert await Scheduler(store, starter).tick(at("2026-05-01T13:05:00")) == []
        await starter.wait()
        fires = await store.list_fires("s", limit=1000)
        assert sorted(f.scheduled_for for f in fires) == sorted(["2026-05-01T10:00:00+00:00", *expected])

    with_sqlite(tmp_path, scenario)


T0, T1, T2 = "2026-05-01T10:00:00+00:00", "2026-05-01T10:01:00+00:00", "2026-05-01T10:02:00+00:00"


@pytest.mark.parametrize(("overlap", "expected"), [
    ("skip", [(T0, "started"), (T1, "skipped"), (T2, "started")]),
    # the queued 10:01 starts once 10:00 has ended; 10:02 then waits behind it
    ("queue", [(T0, "started"), (T1, "queued"), (T1, "started"), (T2, "queued")]),
    ("allow", [(T0, "started"), (T1, "started"), (T2, "started")]),
])
def test_overlap_policies_while_the_previous_execution_runs(tmp_path: Path, overlap: str,
                                                           expected: list[tuple[str, str]]) -> None:
    async def scenario(store: Store, tmp: Path) -> list[Fired]:
        await add(store, tmp, cron="* * * * *", overlap=overlap, created="2026-05-01T09:59:30+00:00", text=WAITING)
        starter = LocalStarter(store)
        scheduler = Scheduler(store, starter)
        fired = await scheduler.tick(at("2026-05-01T10:00:01"))
        fired += await scheduler.tick(at("2026-05-01T10:01:01"))  # the 10:00 execution still waits
        (tmp / "go").touch()
        await running_ends(store, fired)
        # What starts at 10:02 waits again, so a queued 10:01 is still running when 10:02 comes due
        # in the same tick, however fast the machine runs it.
        (tmp / "go").unlink()
        fired += await scheduler.tick(at("2026-05-01T10:02:01"))
        (tmp / "go").touch()
        await starter.wait()
        return fired

    fired = with_sqlite(tmp_path, scenario)
    assert [(f.scheduled_for, f.status) for f in fired] == expected


def test_a_run_now_still_running_makes_a_skip_schedules_fire_time_pass(tmp_path: Path) -> None:
    async def scenario(store: Store, tmp: Path) -> list[Fired]:
        schedule = await add(store, tmp, cron="* * * * *", overlap="skip", created="2026-05-01T09:59:30+00:00",
                             text=WAITING)
        starter = LocalStarter(store)
        scheduler = Scheduler(store, starter)
        fired = [await scheduler.run_now(schedule, at("2026-05-01T09:59:45.250000"))]
        fired += await scheduler.tick(at("2026-05-01T10:00:01"))  # the run-now execution still waits
        (tmp / "go").touch()
        await starter.wait()
        return fired

    fired = with_sqlite(tmp_path, scenario)
    assert [(f.scheduled_for, f.status) for f in fired] == [
        ("2026-05-01T09:59:45.250000+00:00", "started"), (T0, "skipped")]


async def running_ends(store: Store, fired: list[Fired]) -> None:
    for fire in fired:
        while fire.execution_id:
            record = await store.get_execution(fire.execution_id)
            if record is not None and record.status != "running":
                break
            await asyncio.sleep(0.02)


def test_two_schedulers_racing_on_one_postgresql_run_each_fire_time_once(
        fresh_database: str, tmp_path: Path) -> None:  # noqa: F811
    async def main() -> None:
        stores = [PostgresStore(fresh_database) for _ in range(2)]
        for store in stores:
            await store.open()
        try:
            await add(stores[0], tmp_path, cron="* * * * *", catchup="all", overlap="allow",
                      created="2026-05-01T09:59:59+00:00")
            starters = [LocalStarter(store) for store in stores]
            schedulers = [Scheduler(store, starter) for store, starter in zip(stores, starters, strict=True)]
            fired: list[Fired] = []
            for minute in range(0, 10, 2):  # both tick at once, every two minutes
                now = at("2026-05-01T10:00:30") + timedelta(minutes=minute)
                for result in await asyncio.gather(*(s.tick(now) for s in schedulers)):
                    fired.extend(result)
            for starter in starters:
                await starter.wait()
            expected = [f"2026-05-01T10:{m:02d}:00+00:00" for m in range(9)]
            assert sorted(started(fired)) == expected  # each fire time started exactly once
            fires = await stores[1].list_fires("s", limit=100)
            assert sorted(f.scheduled_for for f in fires) == expected
            for fire in fires:
                record = await stores[1].get_execution(str(fire.execution_id))
                assert record is not None and record.status == "completed"
            # One active scheduler across servers: the advisory lock.
            assert await stores[0].try_scheduler_lock()
            assert not await stores[1].try_scheduler_lock()
            await stores[0].close()
            assert await stores[1].try_scheduler_lock()
        finally:
            for store in stores:
                await store.close()

    asyncio.run(main())
