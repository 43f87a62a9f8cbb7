"""Rendering inside async code without stalling the event loop.

A render is pure CPU work. Nearly all take microseconds, so they run inline under a short time
limit; one that needs longer is rendered again on a thread, under the task's own time limit, while
the event loop keeps serving heartbeats, leases and other commands. A render that would read a big
stored result (over ``INLINE_LOAD_BYTES``) stops before reading it and goes to the thread too. Every render is bounded by the
sandbox too (see noetl/dsl/render_env.py), so even the thread ends on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from noetl.dsl.render_budget import inline_loads, time_limit
from noetl.errors import TemplateError

T = TypeVar("T")

INLINE_SECONDS = 0.05  # longest a render may hold the event loop
DEFAULT_SECONDS = 30.0  # time limit of a render when its task has no `spec.timeout`


def render_inline(render: Callable[[], T], *, seconds: float | None = None) -> T | None:
    """``render()`` when it finishes within the inline limit (nearly every render), else None: the
    caller then awaits :func:`render_on_thread`. For a render that never returns None (a task's
    configuration); a plain call, where a coroutine per step would cost more than most renders."""
    limit = float(seconds) if seconds else DEFAULT_SECONDS
    try:
        with time_limit(time.monotonic, min(INLINE_SECONDS, limit)), inline_loads():
            return render()
    except TemplateError as exc:
        if not getattr(exc, "timed_out", False) or limit <= INLINE_SECONDS:
            raise
    return None


async def render_on_thread(render: Callable[[], T], *, seconds: float | None = None) -> T:
    """``render()`` again on a thread, under the whole time limit (one that took too long inline)."""
    limit = float(seconds) if seconds else DEFAULT_SECONDS

    def bounded() -> T:
        with time_limit(time.monotonic, limit):
            return render()

    return await asyncio.to_thread(bounded)  # copies the context: warnings reach the same trace
