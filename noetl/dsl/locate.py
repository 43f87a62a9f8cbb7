"""Where in the playbook's own file a run-time warning points (``file:line:col``).

Run-time warnings name a step and a field of it (``input.city``, ``set ctx.total``, ``url``,
``arc to 'b' when``); the step is found in the document as the user wrote it (any DSL generation),
and the field as deep as the document has it, else the step itself.
"""

from __future__ import annotations

import re
from typing import Any

from noetl.dsl.source import PathKey, Position, Source

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _field_path(field: str) -> PathKey:
    if " " in field:
        head, rest = field.split(" ", 1)
        if head == "set":
            return ("set", rest)
        if head in ("arc", "arc set"):
            return ("next",)
        if head == "task":
            return ("tool",)
        return ()
    return tuple(int(index) if index else name for name, index in _PATH_PART.findall(field))


def _step_index(data: Any, step: str) -> int | None:
    workflow = data.get("workflow") if isinstance(data, dict) else None
    for i, item in enumerate(workflow if isinstance(workflow, list) else []):
        if isinstance(item, dict) and step in (item.get("step"), item.get("name")):
            return i
    return None


def locate(source: Source, step: str | None, field: str | None) -> str:
    """``file:line:col`` of ``field`` of ``step``, as close as the document allows."""
    found = position(source, step, field)
    return source.file if found is None else f"{source.file}:{found[0]}:{found[1]}"


def position(source: Source, step: str | None, field: str | None) -> Position | None:
    """(line, col) of ``field`` of ``step`` (else of its closest ancestor); None without the step."""
    index = _step_index(source.data, step) if step else None
    if index is None:
        return None
    base: PathKey = ("workflow", index)
    path = _field_path(field or "")
    positions = source.positions
    for candidate in ((*base, *path), (*base, "tool", *path)):
        if candidate in positions:
            return positions[candidate]
    probe = (*base, *path)
    while probe not in positions and len(probe) > len(base):
        probe = probe[:-1]
    return positions.get(probe)
