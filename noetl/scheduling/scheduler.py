"""The scheduler: at each tick, start the executions whose fire times have come.

It is handed ``now`` on every tick (the server and ``noetl scheduler`` pass the wall clock; tests
pass any instant), so a DST change or a three-hour outage is a matter of calling ``tick`` with the
right times.

- **Fire times** of a schedule are walked from its cursor (fire times up to the cursor are handled)
  to ``now``. Each one is claimed in the store (unique (schedule, scheduled_for)) *before* its
  execution starts, so it runs once even when two schedulers race or one restarts.
- **catchup** decides what happens to fire times missed while no scheduler ran (older than
  ``grace`` at the tick): ``none`` skips them, ``latest`` runs only the newest, ``all`` runs each.
  A fire time within ``grace`` is on time and always runs.
- **overlap** decides what happens when a fire time comes while the schedule's previous execution
  still runs: ``skip`` records it as skipped, ``queue`` records it as queued and starts it once the
  previous one has ended (oldest first), ``allow`` starts it anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from noetl.errors import InputError, NoetlError
from noetl.ids import new_execution_id
from noetl.scheduling.cron import MAX_FIRES_PER_WALK, fire_times, parse_instant, utc_text
from noetl.store.base import FireRecord, ScheduleRecord, Store


class Starter(Protocol):
    async def __call__(self, schedule: ScheduleRecord, scheduled_for: str, execution_id: str, *,
                       manual: bool = False) -> None:
        """Start the execution of one fire time under the given id (``manual``: a "run now");
        return once the execution is recorded (so the next tick sees it running), not when it ends."""


def fire_meta(schedule: ScheduleRecord, scheduled_for: str, manual: bool) -> dict[str, object]:
    """What a scheduled execution records on its first event."""
    meta: dict[str, object] = {"schedule": schedule.name, "scheduled_for": scheduled_for}
    return {**meta, "manual": True} if manual else meta

DEFAULT_GRACE = timedelta(seconds=60)
log = logging.getLogger("noetl.scheduler")
TERMINAL = ("completed", "failed", "cancelled")


@dataclass(slots=True)
class Fired:
    schedule: str
    scheduled_for: str
    status: str  # started | skipped | queued
    execution_id: str | None = None


class Scheduler:
    def __init__(self, store: Store, start: Starter, *, grace: timedelta = DEFAULT_GRACE) -> None:
        self.store = store
        self.start = start
        self.grace = grace

    async def tick(self, now: datetime) -> list[Fired]:
        """Handle every enabled schedule's fire times up to ``now``; return what happened."""
        fired: list[Fired] = []
        for schedule in await self.store.list_schedules():
            if schedule.enabled:
                fired.extend(await self.tick_schedule(schedule, now))
        return fired

    async def tick_schedule(self, schedule: ScheduleRecord, now: datetime) -> list[Fired]:
        fired = await self._start_queued(schedule)
        cursor = parse_instant(schedule.cursor or schedule.created_at)
        due = fire_times(schedule.cron, schedule.timezone, after=cursor, until=now)
        for moment in self._by_catchup(schedule, due, now):
            fired.append(await self._fire(schedule, moment))
        if due:
            await self.store.update_schedule(schedule.name, cursor=utc_text(due[-1]))
        return fired

    def _by_catchup(self, schedule: ScheduleRecord, due: list[datetime], now: datetime) -> list[datetime]:
        on_time = [moment for moment in due if now - moment <= self.grace]
        missed = [moment for moment in due if now - moment > self.grace]
        if schedule.catchup == "all":
            return due
        if schedule.catchup == "latest" and missed and not on_time:
            return missed[-1:]
        return on_time

    async def _fire(self, schedule: ScheduleRecord, moment: datetime) -> Fired:
        when = utc_text(moment)
        if schedule.overlap != "allow" and await self._busy(schedule):
            status = "queued" if schedule.overlap == "queue" else "skipped"
            await self.store.claim_fire(FireRecord(schedule.name, when, status))
            return Fired(schedule.name, when, status)
        return await self.run_fire(schedule, when)

    async def run_fire(self, schedule: ScheduleRecord, when: str) -> Fired:
        """Claim the fire time ``when`` and start its execution, unless anyone claimed it before."""
        execution_id = new_execution_id()
        if not await self.store.claim_fire(FireRecord(schedule.name, when, "started", execution_id)):
            return Fired(schedule.name, when, "claimed-before")
        try:
            await self.start(schedule, when, execution_id)
        except NoetlError as exc:  # e.g. the playbook left the catalog: the other schedules go on
            log.error("schedule %s: the execution of %s did not start: %s", schedule.name, when, exc)
            return Fired(schedule.name, when, "not-started")
        return Fired(schedule.name, when, "started", execution_id)

    async def run_now(self, schedule: ScheduleRecord, now: datetime) -> Fired:
        """Start an execution of the schedule at once ("run now"), paused or not, whatever its
        overlap policy says (the operator asked for it). Its fire record is the instant of the
        request, to the microsecond, so it never takes a cron fire time's place; it is recorded
        after the execution started, so a playbook that cannot start (gone from the catalog) is an
        error for the caller and leaves no record."""
        when = utc_text(now, timespec="microseconds")
        execution_id = new_execution_id()
        await self.start(schedule, when, execution_id, manual=True)
        await self.store.claim_fire(FireRecord(schedule.name, when, "started", execution_id))
        return Fired(schedule.name, when, "started", execution_id)

    async def _busy(self, schedule: ScheduleRecord) -> bool:
        """Whether the schedule's latest started execution is still running."""
        for fire in await self.store.list_fires(schedule.name, status="started", limit=1):
            if fire.execution_id is None:
                return False
            record = await self.store.get_execution(fire.execution_id)
            return record is not None and record.status not in TERMINAL
        return False

    async def _start_queued(self, schedule: ScheduleRecord) -> list[Fired]:
        if schedule.overlap != "queue" or await self._busy(schedule):
            return []
        queued = await self.store.list_fires(schedule.name, status="queued", limit=1_000)
        if not queued:
            return []
        oldest = queued[-1]
        execution_id = new_execution_id()
        if not await self.store.start_queued_fire(schedule.name, oldest.scheduled_for, execution_id):
            return []  # another scheduler started it
        await self.start(schedule, oldest.scheduled_for, execution_id)
        return [Fired(schedule.name, oldest.scheduled_for, "started", execution_id)]

    async def backfill(self, schedule: ScheduleRecord, start: datetime, end: datetime) -> list[Fired]:
        """Run every fire time in ``[start, end]`` that has not run yet (overlap does not apply)."""
        moments = fire_times(schedule.cron, schedule.timezone, after=start - timedelta(microseconds=1), until=end,
                             limit=MAX_FIRES_PER_WALK + 1)
        if len(moments) > MAX_FIRES_PER_WALK:
            # Refused whole rather than cut short: the first 10,000 of a year of minutes would run
            # and the command would report success.
            raise InputError(f"the range {utc_text(start)} .. {utc_text(end)} holds more than "
                             f"{MAX_FIRES_PER_WALK:,} fire times of schedule {schedule.name!r} ({schedule.cron}): "
                             f"backfill at most {MAX_FIRES_PER_WALK:,} at a time")
        return [await self.run_fire(schedule, utc_text(moment)) for moment in moments]
