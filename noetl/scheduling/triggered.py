"""Completion triggers on the distributed runtime: a server task polls the recently finished
executions and fires each matching (trigger, execution) pair once (the store's claim decides
between servers; the in-memory set only spares repeated claims)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from noetl import triggers
from noetl.errors import NoetlError, NotFoundError
from noetl.runtime.distributed import DecisionCore
from noetl.runtime.request import StartOptions
from noetl.store.base import TriggerRecord

log = logging.getLogger("noetl.triggers")
RECENT = 100  # finished executions looked at per status and tick


def distributed_starter(core: DecisionCore, source_id: str) -> triggers.Starter:
    async def start(trigger: TriggerRecord, execution_id: str, payload: dict[str, Any]) -> None:
        entry = await core.store.get_catalog(trigger.run_path)
        if entry is None:
            raise NotFoundError(f"trigger {trigger.name!r}: no catalog entry for path {trigger.run_path!r}")
        await core.submit(playbook_text=entry.content, source=f"catalog://{entry.path}@{entry.version}",
                          payload=payload, execution_id=execution_id,
                          start=StartOptions(meta={"trigger": trigger.name, "triggered_by": source_id}))

    return start


async def tick(core: DecisionCore, handled: set[tuple[str, str]]) -> list[str]:
    started: list[str] = []
    all_triggers = await core.store.list_triggers()
    for status in {t.on_status for t in all_triggers}:
        for source in await core.store.list_executions(status=status, limit=RECENT):
            for trigger in all_triggers:
                key = (trigger.name, source.execution_id)
                if key in handled or not triggers.matches(trigger, source):
                    continue
                handled.add(key)
                try:
                    execution_id = await triggers.fire(core.store, trigger, source,
                                                       distributed_starter(core, source.execution_id))
                except NoetlError as exc:  # a trigger whose playbook is gone must not stop the others
                    log.error("trigger %s for execution %s failed: %s", trigger.name, source.execution_id, exc)
                    continue
                if execution_id:
                    started.append(execution_id)
    return started


async def run_trigger_poller(core: DecisionCore, stop: asyncio.Event, *, interval: float = 1.0) -> None:
    handled: set[tuple[str, str]] = set()
    while not stop.is_set():
        try:
            await tick(core, handled)
        except NoetlError as exc:  # a lost database must not stop the server
            log.error("trigger tick failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
