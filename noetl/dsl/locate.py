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


_ARC_FIELD = re.compile(r"arc to (['\"])(.*)\1( when)?$")


def _arc_path(step: Any, field: str) -> PathKey | None:
    """Where an arc's `when` (or the arc itself) is written, for a field ``arc to 'x' when``, in
    whichever spelling the step routes: `next.arcs`, a v1 `next:` list (`{step, when}` or `{when,
    then, else}`) or case-era `case:` rules."""
    match = _ARC_FIELD.match(field)
    if match is None or not isinstance(step, dict):
        return None
    target, key = match.group(2), ("when",) if match.group(3) else ()
    nxt = step.get("next")
    arcs = nxt.get("arcs") if isinstance(nxt, dict) else None
    for j, arc in enumerate(arcs if isinstance(arcs, list) else []):
        if isinstance(arc, dict) and arc.get("step") == target:
            return ("next", "arcs", j, *key)
    for holder in ("next", "case"):
        entries = step.get(holder)
        for j, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict) and target in _targets(entry):
                return (holder, j, *key) if "when" in entry or not key else (holder, j)
    return None


def _targets(entry: dict[str, Any]) -> set[str]:
    """The step names a v1 `next` entry or a case rule routes to."""
    found = {entry["step"]} if isinstance(entry.get("step"), str) else set()
    for branch in ("then", "else"):
        value = entry.get(branch)
        if isinstance(value, dict):
            value = value.get("next")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                found.add(item)
            elif isinstance(item, dict):
                found |= _targets({"step": item.get("step"), "then": item.get("next")})
    return found


def position(source: Source, step: str | None, field: str | None) -> Position | None:
    """(line, col) of ``field`` of ``step`` (else of its closest ancestor); None without the step."""
    index = _step_index(source.data, step) if step else None
    if index is None:
        return None
    base: PathKey = ("workflow", index)
    path = _arc_path(source.data["workflow"][index], field or "") or _field_path(field or "")
    positions = source.positions
    for candidate in ((*base, *path), (*base, "tool", *path)):
        if candidate in positions:
            return positions[candidate]
    probe = (*base, *path)
    while probe not in positions and len(probe) > len(base):
        probe = probe[:-1]
    return positions.get(probe)
