"""Rendering inside async code without stalling the event loop.

A render is pure CPU work. Nearly all take microseconds, so they run inline under a short time
limit; one that needs longer is rendered again on a thread, under the task's own time limit, while
the event loop keeps serving heartbeats, leases and other commands. Every render is bounded by the
sandbox too (see noetl/dsl/render_env.py), so even the thread ends on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from noetl.dsl.render_budget import time_limit
from noetl.errors import TemplateError

T = TypeVar("T")

INLINE_SECONDS = 0.05  # longest a render may hold the event loop
DEFAULT_SECONDS = 30.0  # time limit of a render when its task has no `spec.timeout`


async def render_off_loop(render: Callable[[], T], *, seconds: float | None = None) -> T:
    """``render()`` with a time limit of ``seconds`` (the task's timeout), never blocking the loop long."""
    limit = float(seconds) if seconds else DEFAULT_SECONDS
    try:
        with time_limit(time.monotonic, min(INLINE_SECONDS, limit)):
            return render()
    except TemplateError as exc:
        if not getattr(exc, "timed_out", False) or limit <= INLINE_SECONDS:
            raise

    def bounded() -> T:
        with time_limit(time.monotonic, limit):
            return render()

    return await asyncio.to_thread(bounded)  # copies the context: warnings reach the same trace
