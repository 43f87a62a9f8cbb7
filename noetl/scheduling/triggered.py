"""Completion triggers on the distributed runtime: a server task polls, for each trigger, the
executions of its path that finished since the last tick (all of them, a page at a time: a burst
of finished executions is never cut off) and fires each matching (trigger, execution) pair once.
The store's claim decides between servers and across restarts; the in-memory record of handled
pairs only spares repeated claims and forgets pairs once they fall behind the look-back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from noetl import triggers
from noetl.errors import NoetlError, NotFoundError
from noetl.runtime.distributed import DecisionCore
from noetl.runtime.request import StartOptions
from noetl.store.base import ExecutionRecord, TriggerRecord
from noetl.store.common import utc_bound
from noetl.waiting import event_set_within

log = logging.getLogger("noetl.triggers")
# A server that starts fires for executions that finished up to this long before (while no server ran).
RESTART_LOOKBACK = timedelta(hours=24)
# An execution may commit its end a little after the time it records: each tick looks back this far.
SLACK = timedelta(seconds=60)
PAGE = 500


@dataclass(slots=True)
class Seen:
    """How far back the next tick looks, and the (trigger, execution) pairs already handled since then."""

    since: datetime
    handled: dict[tuple[str, str], str] = field(default_factory=dict)  # pair -> the source's ended_at

    def advance(self, now: datetime) -> None:
        self.since = max(self.since, now - SLACK)
        cutoff = self.since.isoformat()
        self.handled = {key: ended for key, ended in self.handled.items() if (utc_bound(ended) or "") >= cutoff}


def distributed_starter(core: DecisionCore, source_id: str) -> triggers.Starter:
    async def start(trigger: TriggerRecord, execution_id: str, payload: dict[str, Any]) -> None:
        entry = await core.store.get_catalog(trigger.run_path)
        if entry is None:
            raise NotFoundError(f"trigger {trigger.name!r}: no catalog entry for path {trigger.run_path!r}")
        await core.submit(playbook_text=entry.content, source=f"catalog://{entry.path}@{entry.version}",
                          payload=payload, execution_id=execution_id,
                          start=StartOptions(meta={"trigger": trigger.name, "triggered_by": source_id}))

    return start


async def tick(core: DecisionCore, seen: Seen, now: datetime | None = None) -> list[str]:
    """Fire every trigger for the executions of its path that ended since ``seen.since``."""
    now = now or datetime.now(UTC)
    started: list[str] = []
    for trigger in await core.store.list_triggers():
        async for source in _finished(core, trigger, seen.since):
            key = (trigger.name, source.execution_id)
            if key in seen.handled or not triggers.matches(trigger, source):
                continue
            seen.handled[key] = source.ended_at or now.isoformat()
            try:
                execution_id = await triggers.fire(core.store, trigger, source,
                                                   distributed_starter(core, source.execution_id))
            except NoetlError as exc:  # a trigger whose playbook is gone must not stop the others
                log.error("trigger %s for execution %s failed: %s", trigger.name, source.execution_id, exc)
                continue
            if execution_id:
                started.append(execution_id)
    seen.advance(now)
    return started


async def _finished(core: DecisionCore, trigger: TriggerRecord, since: datetime) -> AsyncIterator[ExecutionRecord]:
    """The executions of the trigger's path with its status that ended since ``since``, a page at a time."""
    offset = 0
    while True:
        page = await core.store.list_executions(status=trigger.on_status, path=trigger.on_path,
                                                ended_since=since.isoformat(), limit=PAGE, offset=offset)
        for source in page:
            yield source
        if len(page) < PAGE:
            return
        offset += PAGE


async def run_trigger_poller(core: DecisionCore, stop: asyncio.Event, *, interval: float = 1.0) -> None:
    seen = Seen(since=datetime.now(UTC) - RESTART_LOOKBACK)
    while not stop.is_set():
        try:
            await tick(core, seen)
        except NoetlError as exc:  # a lost database must not stop the server
            log.error("trigger tick failed: %s", exc)
        await event_set_within(stop, interval)
