"""Bounded waits (noetl.waiting): a cancel arriving as the wait ends is never lost."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from noetl.waiting import cancel_and_wait, event_set_within, within

PACKAGE = Path(__file__).resolve().parents[2] / "noetl"


def test_a_cancel_arriving_as_the_event_is_set_stops_the_waiting_task() -> None:
    async def scenario() -> bool:
        event = asyncio.Event()
        waiter = asyncio.create_task(event_set_within(event, 5))
        await asyncio.sleep(0)  # the waiter waits on the event
        event.set()
        waiter.cancel()  # in the same loop iteration
        try:
            await waiter
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(scenario())


def test_event_set_within_says_whether_the_event_was_set() -> None:
    async def scenario() -> tuple[bool, bool]:
        event = asyncio.Event()
        timed_out = await event_set_within(event, 0.01)
        event.set()
        return timed_out, await event_set_within(event, 0.01)

    assert asyncio.run(scenario()) == (False, True)


def test_within_raises_timeout_and_cancels_what_it_awaited() -> None:
    async def scenario() -> bool:
        slow = asyncio.ensure_future(asyncio.sleep(10))
        with pytest.raises(TimeoutError):
            await within(slow, 0.01)
        return slow.cancelled()

    assert asyncio.run(scenario())


def test_cancel_and_wait_raises_when_the_caller_is_cancelled_meanwhile() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # cleans up before it ends
            raise

    async def scenario() -> tuple[bool, bool]:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        await cancel_and_wait(task)  # the task's own cancel is not raised here
        other = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        stopping = asyncio.create_task(cancel_and_wait(other))
        await asyncio.sleep(0.01)
        stopping.cancel()
        try:
            await stopping
        except asyncio.CancelledError:
            return task.cancelled(), True
        return task.cancelled(), False

    assert asyncio.run(scenario()) == (True, True)


def test_the_package_never_waits_with_asyncio_wait_for() -> None:
    """asyncio.wait_for loses a cancel on Python 3.11 (see noetl.waiting); its helpers replace it."""
    users = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "wait_for" and \
                    isinstance(node.value, ast.Name) and node.value.id == "asyncio":
                users.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not users, f"asyncio.wait_for used at {users}; use noetl.waiting"
