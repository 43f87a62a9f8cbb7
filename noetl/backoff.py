"""How long to wait before trying again: the one backoff rule, for task retry policies and for the
runtime's own reconnects and polls.

``backoff`` names the growth between attempts: ``linear`` (``delay × n``), ``exponential``
(``delay × 2^(n-1)``); ``none`` and every other name (``fixed``, ``constant``, ...) mean a constant
``delay``, as real playbooks expect. ``max_delay`` caps the result.
"""

from __future__ import annotations

# 2**60 seconds is already far past any sensible cap; bounding the exponent keeps a retry counter
# in the thousands from overflowing a float.
_MAX_EXPONENT = 60


def backoff_delay(attempt: int, *, delay: float, backoff: str = "exponential",
                  max_delay: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry)."""
    step = max(int(attempt), 1)
    seconds = max(float(delay), 0.0)
    name = str(backoff or "none").lower()
    if name == "linear":
        seconds *= step
    elif name == "exponential":
        seconds *= 2 ** min(step - 1, _MAX_EXPONENT)
    return min(seconds, float(max_delay)) if max_delay is not None else seconds
