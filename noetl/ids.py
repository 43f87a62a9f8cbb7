"""Execution ids: 64-bit, time-ordered integers rendered as strings.

Numeric ids keep the seeds' event-log queries working as written, both
``WHERE execution_id = 123`` and ``WHERE execution_id = '123'``.
"""

from __future__ import annotations

import os
import threading
import time

_EPOCH_MS = 1_600_000_000_000
_lock = threading.Lock()
_last = 0


def new_execution_id() -> str:
    """Milliseconds since 2020-09 in the high bits, a counter/random tail in the low 22 bits."""
    global _last
    with _lock:
        candidate = ((int(time.time() * 1000) - _EPOCH_MS) << 22) | int.from_bytes(os.urandom(2), "big")
        _last = max(candidate, _last + 1)
        return str(_last)
