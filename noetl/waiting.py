"""Bounded waits that never lose a cancel.

On Python 3.11, ``asyncio.wait_for`` returns normally when what it awaits completes in the same
loop iteration as the waiting task is cancelled: the cancel is lost. A task that loops on an event
(the log flush task, a poller) then never stops, and whoever awaits its end waits forever; `noetl
run` of a chatty step hung that way after its run had completed. ``asyncio.timeout`` keeps a cancel
from outside apart from its own, so every bounded wait of NoETL goes through here (a test keeps
``asyncio.wait_for`` out of the package).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """``await awaitable``, or TimeoutError after ``seconds`` (the awaitable is then cancelled)."""
    async with asyncio.timeout(seconds):
        return await awaitable


async def event_set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; whether it is set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def cancel_and_wait(task: asyncio.Task[object]) -> None:
    """Cancel ``task`` and wait for it to end. A cancel of the caller itself, arriving meanwhile,
    is raised (not taken for the task's own)."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
