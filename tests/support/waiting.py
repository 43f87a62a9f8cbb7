"""Waiting in tests for something another process does: poll, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# How long a `noetl` server (or console) process may take to answer its first request. Seconds on an
# idle machine; a CI runner busy with the rest of the suite has been seen to need more than 30.
STARTUP_SECONDS = 90


def until(what: str, check: Callable[[], T], seconds: float = 60) -> T:
    """The first truthy value of ``check()``, polled every 0.1 s; AssertionError after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
