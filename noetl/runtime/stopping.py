"""Stopping background work without waiting on a store that is down.

A task blocked on PostgreSQL (a connection wait of the pool lasts up to its timeout, and a round
may make several) must not hold up the stop of a server or worker: the operator asked it to stop,
and whatever the task was doing is retried by whoever runs next (leases lapse and are reaped,
schedules and triggers are idempotent per slot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Coroutine
from typing import Any

from noetl.waiting import event_set_within

# How long background tasks get to end their round once asked to stop. Against a live database a
# round takes milliseconds; against one that is down it would wait out the pool's timeout.
STOP_GRACE_SECONDS = 2.0


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    await event_set_within(stop, seconds)


async def finish_within(tasks: Collection[asyncio.Task[object]], seconds: float = STOP_GRACE_SECONDS) -> None:
    """Let ``tasks`` end on their own for up to ``seconds``, then cancel the ones still running.
    Returns once every task has ended; their exceptions are left on the tasks for the caller."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event,
                        grace: float = STOP_GRACE_SECONDS) -> None:
    """Run ``work`` to its end, or, once ``stop`` is set, for ``grace`` seconds more and then cancel
    it. What ``work`` raises before it is cut short is raised here."""
    working = asyncio.create_task(work)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    await finish_within({working}, grace)
    if not working.cancelled():
        working.result()
