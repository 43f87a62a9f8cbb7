"""A loop's aggregate by reference (SPEC section 19): what the fold keeps of a loop with more
iterations than its step keeps inline, and the aggregate it ends with.

Every iteration's result is already in the log, on its own ``call.done`` (or ``call.error``). A
loop past the step's ``output.inline_max_items`` (default 10,000) does not copy
them into ``loop.done`` and ``step.exit``, nor hold them in the state of every process that folds
the execution: its aggregate's ``results`` is a reference (:func:`noetl.results.refs.loop_ref`)
that the result storage resolves from those reports, one item or one page at a time, when a
template, ``noetl result`` or the API reads it. Deciding by the count is deterministic and known as
the loop starts (for a cursor loop: once it has run that many iterations), and step.enter records
it, so a replay folds exactly what was decided. Pure: no I/O here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from noetl.errors import ToolError
from noetl.results.refs import loop_ref
from noetl.results.spec import DEFAULT_INLINE_MAX_ITEMS, output_spec

PREVIEW_ITEMS = 3  # the first iterations the reference's preview shows
# A loop's results past this much JSON go by reference too, whatever their count (each result over
# `inline_max_bytes` is a small reference already; this bounds many medium-sized ones).
AGGREGATE_MAX_BYTES = 16 * 1024 * 1024


# One encoder for every size: json.dumps with options builds a new one per call, which cost more than
# encoding a loop iteration's usual result (measured once per iteration, in every folding process).
_SIZE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (what an inline aggregate would add to its events)."""
    if value is None:
        return 4  # null: most loop iterations' result
    return len(_SIZE_ENCODER.encode(value).encode("utf-8"))


def aggregate_max_bytes(output: Any) -> int | None:
    """The step's ``output.aggregate_max_bytes``, or None for the default (not recorded then)."""
    value = output.get("aggregate_max_bytes") if isinstance(output, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def inline_max_items(output: Any) -> int:
    """The step's ``output.inline_max_items`` (a bad value is a validation error before anything runs)."""
    try:
        return output_spec(output).inline_max_items
    except ToolError:
        return DEFAULT_INLINE_MAX_ITEMS


def looks_like_error(value: Any) -> bool:
    return isinstance(value, dict) and "message" in value and "kind" in value


@dataclass(slots=True, eq=False, repr=False)  # state that changes as it runs: compared and shown by identity
class AggregateByRef:
    """What the fold keeps of a loop whose results are read back by reference."""

    head: dict[int, Any] = field(default_factory=dict)  # the first iterations, for the preview
    first_error: Any = None
    first_error_index: int | None = None
    frames: bool = False  # a cursor loop's: its reports are frames of several iterations each

    def record(self, index: int, value: Any, ok: bool) -> None:
        if index < PREVIEW_ITEMS:
            self.head[index] = value
        if not ok and (self.first_error_index is None or index < self.first_error_index):
            self.first_error, self.first_error_index = value, index

    def ref(self, execution_id: str, step: str, entry: int, count: int) -> dict[str, Any]:
        preview = []
        for index in range(min(PREVIEW_ITEMS, count)):
            if index not in self.head:
                break
            preview.append(self.head[index])
        return loop_ref(execution_id=execution_id, step=step, entry=entry, count=count, preview=preview,
                        frames=self.frames)
