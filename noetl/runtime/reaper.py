"""The reaper: gives the work of crashed or hung workers back to the queue.

A lease that was not extended by heartbeats before it expired means the worker died (kill -9, lost
machine) or hung. The command goes back to the queue while it has attempts left; after the last
attempt its step fails with an error saying so, through the same decision core as any report.
Several reapers (one per server and worker) may run at once: every statement locks what it changes
with SKIP LOCKED or re-checks the lease under the execution lock, so each lease is handled once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.errors import ErrorInfo, StoreError
from noetl.results.storage import storage_for
from noetl.runtime.distributed import DecisionCore
from noetl.store.postgres.queue import CommandQueue, LeasedCommand
from noetl.waiting import event_set_within

log = logging.getLogger("noetl.reaper")
# How often a reaper also deletes results whose `output.store.ttl` has passed (one indexed DELETE).
RESULT_SWEEP_SECONDS = 60.0


def lease_lost_event(leased: LeasedCommand, max_attempts: int) -> Event:
    message = (f"step {leased.step!r}: its command {leased.command_id} was started {leased.attempt} time(s) and "
               f"each time the worker stopped heartbeating before finishing (last worker: "
               f"{leased.lease_owner or 'unknown'}); max attempts is {max_attempts}")
    meta = {"command_id": leased.command_id, "attempt": leased.attempt, "worker": "reaper"}
    loop_index = leased.payload.get("loop_index")
    if loop_index is not None:
        meta["loop_index"] = loop_index
    return Event(leased.execution_id, ev.CALL_ERROR, node_name=leased.step, status="failed",
                 error=ErrorInfo("lease_expired", message, False).to_dict(), meta=meta)


class Reaper:
    def __init__(self, core: DecisionCore, *, max_attempts: int = 3) -> None:
        self.core = core
        self.queue = CommandQueue(core.store)
        self.max_attempts = max_attempts
        self._next_result_sweep = 0.0

    async def reap_once(self) -> dict[str, int]:
        now = self.core.now()
        requeued = await self.queue.requeue_expired(max_attempts=self.max_attempts, now=now)
        failed = 0
        for leased in await self.queue.exhausted(max_attempts=self.max_attempts, now=now):
            if await self.core.report(leased, lease_lost_event(leased, self.max_attempts)):
                failed += 1
        if requeued:
            await self.queue.wake_workers()
        return {"requeued": len(requeued), "failed": failed}

    async def _sweep_expired_results(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_result_sweep:
            return
        self._next_result_sweep = loop.time() + RESULT_SWEEP_SECONDS
        deleted = await storage_for(self.core.store, shared=True).prune(now=self.core.now())
        if deleted:
            log.info("reaper: deleted %d result(s) past their ttl", deleted)

    async def run(self, stop: asyncio.Event, *, interval: float) -> None:
        """Reap every ``interval`` seconds until ``stop``; each round also flushes the process's step
        statistics (every server and worker runs a reaper, so this is their periodic housekeeping)."""
        while not stop.is_set():
            try:
                counts = await self.reap_once()
                if counts["requeued"] or counts["failed"]:
                    log.info("reaper: re-queued %d, failed %d expired command(s)", counts["requeued"],
                             counts["failed"])
                await self.core.stats.flush(self.core.store, self.core.now())
                await self._sweep_expired_results()
            except StoreError as exc:
                log.warning("reaper: %s", exc)  # PostgreSQL restarting: try again next round
            await event_set_within(stop, interval)
        with contextlib.suppress(StoreError):
            await self.core.stats.flush(self.core.store, self.core.now())  # what the last round missed
