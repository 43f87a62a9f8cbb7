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


MAX_EXECUTION_ID = 2**63 - 1  # PostgreSQL BIGINT


def parse_execution_id(value: object, field: str = "execution_id") -> str:
    """The one check of an execution id arriving from outside (API bodies, CLI arguments): a
    positive decimal number that fits in 64 bits, as a JSON number or a string; returned as the
    canonical string. Anything else (``"-5"``, ``"abc"``, ``"007"``, 2**64) is an InputError."""
    from noetl.errors import InputError

    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or text != str(int(text)) \
            or not 0 < int(text) <= MAX_EXECUTION_ID:
        shown = repr(value)[:40]
        raise InputError(f"{field}: {shown} is not an execution id (a positive 64-bit number)")
    return text
