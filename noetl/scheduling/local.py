"""Scheduled executions on the local runtime: ``noetl scheduler`` and ``noetl schedule backfill``.

Each fire time's execution runs in this process, as ``noetl run`` would run it, with
``meta.schedule`` and ``meta.scheduled_for`` on its ``playbook.initialized`` event.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from noetl.engine.events import Event
from noetl.store.base import ScheduleRecord, Store

log = logging.getLogger(__name__)


class LocalStarter:
    """Starts scheduled executions as tasks of this process; ``wait`` waits for all of them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tasks: set[asyncio.Task[dict[str, Any]]] = set()
        self.documents: dict[str, dict[str, Any]] = {}

    async def __call__(self, schedule: ScheduleRecord, scheduled_for: str, execution_id: str, *,
                       manual: bool = False) -> None:
        from noetl.api import resolve_playbook
        from noetl.runtime.local import LocalRuntime
        from noetl.runtime.request import RunRequest
        from noetl.scheduling.scheduler import fire_meta

        loaded = await resolve_playbook(schedule.path, self.store)
        request = RunRequest(playbook=loaded.require(), playbook_text=loaded.source.text, playbook_dir=loaded.base_dir,
                             payload=dict(schedule.payload), execution_id=execution_id,
                             meta=fire_meta(schedule, scheduled_for, manual))
        recorded = asyncio.Event()

        def listener(event: Event) -> None:
            recorded.set()

        task = asyncio.create_task(LocalRuntime(self.store, listener=listener).run(request))
        self.tasks.add(task)
        task.add_done_callback(lambda done: self._finished(execution_id, done))
        waiter = asyncio.create_task(recorded.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    def _finished(self, execution_id: str, task: asyncio.Task[dict[str, Any]]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("scheduled execution %s did not start: %s", execution_id, task.exception())
            return
        self.documents[execution_id] = task.result()

    async def wait(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
