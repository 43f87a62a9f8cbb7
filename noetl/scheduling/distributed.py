"""Scheduled executions on the distributed runtime: the server's scheduler submits each fire time's
execution of the schedule's catalog path (latest version) to the decision core."""

from __future__ import annotations

import asyncio
import logging

from noetl.clock import Clock, utc_now
from noetl.errors import NoetlError, NotFoundError
from noetl.runtime.distributed import DecisionCore
from noetl.runtime.request import StartOptions
from noetl.scheduling.scheduler import Scheduler, fire_meta
from noetl.store.base import ScheduleRecord
from noetl.waiting import event_set_within

log = logging.getLogger("noetl.scheduler")


class DistributedStarter:
    def __init__(self, core: DecisionCore) -> None:
        self.core = core

    async def __call__(self, schedule: ScheduleRecord, scheduled_for: str, execution_id: str, *,
                       manual: bool = False) -> None:
        path = schedule.path.removeprefix("catalog://")
        entry = await self.core.store.get_catalog(path)
        if entry is None:
            raise NotFoundError(f"schedule {schedule.name!r}: no catalog entry for path {path!r}")
        await self.core.submit(playbook_text=entry.content, source=f"catalog://{entry.path}@{entry.version}",
                               payload=dict(schedule.payload), execution_id=execution_id,
                               start=StartOptions(meta=fire_meta(schedule, scheduled_for, manual)))


async def run_server_scheduler(core: DecisionCore, stop: asyncio.Event, *, interval: float = 1.0,
                               clock: Clock = utc_now) -> None:
    """The server's scheduler loop: only the server holding the advisory lock ticks; the others
    keep trying, so one takes over when the active one stops."""
    scheduler = Scheduler(core.store, DistributedStarter(core))
    while not stop.is_set():
        try:
            if await core.store.try_scheduler_lock():
                await scheduler.tick(clock())
        except NoetlError as exc:  # a bad schedule or a lost database must not stop the server
            log.error("scheduler tick failed: %s", exc)
        await event_set_within(stop, interval)
