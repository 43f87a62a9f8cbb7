"""The ``output:`` block of a step or a task (SPEC section 19).

```yaml
output:
  store: {kind: auto, ttl: 7d}        # auto | memory | disk | db | s3; ttl in seconds or 30m/12h/7d
  output_select: [status, count]      # top-level fields kept inline beside the reference
  inline_max_bytes: 65536             # results above this size go by reference
  inline_max_items: 10000             # a loop of more iterations has its aggregate's results by reference
  aggregate_max_bytes: 16777216       # ... and so has a loop whose results outgrow this much JSON
  select: {path: data.items, as: items}   # keep only a slice of the result (a list of these, too)
```
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from noetl.errors import ToolError

DEFAULT_INLINE_MAX_BYTES = 64 * 1024
DEFAULT_INLINE_MAX_ITEMS = 10_000  # iterations whose results a loop's aggregate carries inline
STORE_KINDS = ("auto", "memory", "disk", "db", "s3")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Slice(NamedTuple):
    path: tuple[str, ...]
    as_: str | None = None


class OutputSpec(NamedTuple):
    kind: str = "auto"
    ttl_seconds: float | None = None
    keep: tuple[str, ...] = ()
    inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES
    select: tuple[Slice, ...] = ()
    inline_max_items: int = DEFAULT_INLINE_MAX_ITEMS
    aggregate_max_bytes: int | None = None  # None: the engine's default (noetl.engine.aggregate)


DEFAULT_OUTPUT = OutputSpec()


def output_spec(raw: Any, *, where: str = "output") -> OutputSpec:
    """Parse an ``output:`` block; a bad one is a config error naming the field."""
    if raw is None:
        return DEFAULT_OUTPUT
    if not isinstance(raw, dict):
        raise ToolError(f"{where}: expected a mapping, got {type(raw).__name__}", kind="config")
    store = raw.get("store") or {}
    if isinstance(store, str):
        store = {"kind": store}
    if not isinstance(store, dict):
        raise ToolError(f"{where}.store: expected a mapping such as {{kind: db}}", kind="config")
    kind = str(store.get("kind") or "auto")
    if kind not in STORE_KINDS:
        raise ToolError(f"{where}.store.kind: {kind!r} is not one of {', '.join(STORE_KINDS)}", kind="config")
    keep = raw.get("output_select", store.get("output_select")) or []
    if isinstance(keep, str):
        keep = [keep]
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise ToolError(f"{where}.output_select: expected a list of field names", kind="config")
    return OutputSpec(kind=kind, ttl_seconds=parse_duration(store.get("ttl"), f"{where}.store.ttl"), keep=tuple(keep),
                      inline_max_bytes=_size(raw.get("inline_max_bytes"), f"{where}.inline_max_bytes"),
                      select=_slices(raw.get("select"), f"{where}.select"),
                      inline_max_items=_count(raw.get("inline_max_items"), f"{where}.inline_max_items"),
                      aggregate_max_bytes=None if raw.get("aggregate_max_bytes") is None
                      else _size(raw.get("aggregate_max_bytes"), f"{where}.aggregate_max_bytes"))


MAX_DURATION_SECONDS = 100 * 365 * 86_400


def parse_duration(value: Any, where: str) -> float | None:
    """Seconds from a number or a duration text (``30m``, ``12h``, ``7d``, ``2w``); None stays None."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match or float(match.group(1)) <= 0:
            raise ToolError(f"{where}: expected seconds or a duration such as 30m, 12h, 7d; got {value!r}",
                            kind="config")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:  # an expiry date must exist: datetime stops at the year 9999
        raise ToolError(f"{where}: at most 100 years ({MAX_DURATION_SECONDS:,} s), got {value!r}", kind="config")
    return seconds


def _size(value: Any, where: str) -> int:
    if value is None:
        return DEFAULT_INLINE_MAX_BYTES
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ToolError(f"{where}: expected a number of bytes (0 or more), got {value!r}", kind="config")
    return value


def _count(value: Any, where: str) -> int:
    if value is None:
        return DEFAULT_INLINE_MAX_ITEMS
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ToolError(f"{where}: expected a number of iterations (0 or more), got {value!r}", kind="config")
    return value


def _slices(value: Any, where: str) -> tuple[Slice, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    slices = []
    for item in items:
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"]:
            raise ToolError(f"{where}: expected {{path: data.items, as: items}}", kind="config")
        alias = item.get("as")
        slices.append(Slice(tuple(item["path"].split(".")), str(alias) if alias is not None else None))
    return tuple(slices)


def apply_select(result: Any, slices: tuple[Slice, ...]) -> Any:
    """Keep only the selected slice(s): one slice without ``as`` is the value at its path; with
    ``as`` (or several slices) the result is ``{as: value, ...}``. A missing path gives None."""
    if not slices:
        return result
    if len(slices) == 1 and slices[0].as_ is None:
        return _at(result, slices[0].path)
    return {s.as_ or s.path[-1]: _at(result, s.path) for s in slices}


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value
