"""The one policy for a playbook calling another (``kind: playbook``), on both runtimes.

A call is refused before the child starts when it would nest deeper than ``MAX_CHILD_DEPTH`` or
when the child is already one of the caller's ancestors (A calls B calls A would otherwise nest
until the depth limit). The local runtime knows the chain from its run requests; the distributed
runtime rebuilds it from the parent links of the stored executions (:func:`stored_ancestry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from noetl.errors import ToolError
from noetl.runtime.request import MAX_CHILD_DEPTH


def check_child_call(ancestry: Sequence[str], child_path: str) -> None:
    """``ancestry``: playbook paths from the root execution down to the caller itself."""
    if len(ancestry) > MAX_CHILD_DEPTH:  # the child would sit at depth len(ancestry); the root is 0
        raise ToolError(f"playbook call depth limit ({MAX_CHILD_DEPTH}) reached calling {child_path!r}: "
                        f"chain {' -> '.join(ancestry)}", kind="playbook")
    if child_path in ancestry:
        raise ToolError(f"playbook call cycle: {' -> '.join((*ancestry, child_path))}", kind="playbook")


async def stored_ancestry(store: Any, execution_id: str) -> tuple[str, ...]:
    """The calling execution's ancestry from the stored parent links (root first, the caller last)."""
    paths: list[str] = []
    current: str | None = execution_id
    while current is not None and len(paths) <= MAX_CHILD_DEPTH:
        record = await store.get_execution(current)
        if record is None:
            break
        paths.append(record.path)
        current = record.parent_execution_id
    return tuple(reversed(paths))
