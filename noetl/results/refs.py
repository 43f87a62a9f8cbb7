"""What a result reference is, and the lazy mapping templates read it through.

Pure on purpose (no I/O here): the render environment of the DSL imports it. Loading goes through
a loader the runtime installs with :func:`use_loader` (a context variable, so each runtime's tasks
see their own store), falling back to the last loader installed in the process.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping
from typing import Any

REF_KEY = "_ref"
PREVIEW_CHARS = 200

Loader = Callable[[str, bool], Any]  # (uri, fresh) -> the decoded result; fresh: a copy no one else holds

_loader: contextvars.ContextVar[Loader | None] = contextvars.ContextVar("noetl_result_loader", default=None)
_fallback: list[Loader] = []


def is_ref(value: Any) -> bool:
    """``{_ref: {uri, ...}, <inline fields>}`` -- the shape an event records for a big result."""
    return type(value) is dict and isinstance(value.get(REF_KEY), dict) and "uri" in value[REF_KEY]


def make_ref(*, uri: str, size: int, sha256: str, preview: str) -> dict[str, Any]:
    return {REF_KEY: {"uri": uri, "size": size, "sha256": sha256, "preview": preview}}


def ref_uri(value: Any) -> str | None:
    """The uri of a reference given whole (``{{ step }}``), as its ``_ref`` (``{{ step._ref }}``), or
    as the uri text itself; None for anything else."""
    if isinstance(value, str) and "://" in value:
        return value
    if isinstance(value, Mapping):
        inner = value.get(REF_KEY, value)
        if isinstance(inner, Mapping) and isinstance(inner.get("uri"), str):
            return str(inner["uri"])
    return None


def preview_of(text: str) -> str:
    """The first characters of the result's JSON text, for status documents and listings."""
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."


def use_loader(loader: Loader) -> contextvars.Token[Loader | None]:
    """Install the loader references resolve through, for this task and the tasks it starts."""
    if loader not in _fallback:
        _fallback.append(loader)
        del _fallback[:-4]  # the newest few: processes have one or two stores
    return _loader.set(loader)


def current_loader() -> Loader | None:
    return _loader.get() or (_fallback[-1] if _fallback else None)


def load(uri: str, *, fresh: bool = False) -> Any:
    loader = current_loader()
    if loader is None:
        from noetl.errors import StoreError

        raise StoreError(f"result {uri} cannot be read here: no result storage is open")
    return loader(uri, fresh)


class LazyResult(Mapping[str, Any]):
    """A reference seen from a template: inline fields (and ``_ref``) answer at once, any other key
    loads the full result on first access (and keeps it for the life of this object: one render)."""

    __slots__ = ("_full", "_ref")

    def __init__(self, ref: dict[str, Any]) -> None:
        self._ref = ref
        self._full: Any = None

    def full(self) -> Any:
        if self._full is None:
            self._full = load(self._ref[REF_KEY]["uri"])
        return self._full

    def __getitem__(self, key: str) -> Any:
        if key in self._ref:
            return self._ref[key]
        full = self.full()
        if isinstance(full, Mapping):
            return full[key]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if key in self._ref:
            return True
        full = self.full()
        return isinstance(full, Mapping) and key in full

    def __iter__(self) -> Iterator[str]:
        full = self.full()
        return iter(full) if isinstance(full, Mapping) else iter(())

    def __len__(self) -> int:
        full = self.full()
        return len(full) if isinstance(full, Mapping) else 0


def lazy(value: Any) -> Any:
    """What a template looks into: a reference becomes a :class:`LazyResult`, anything else stays."""
    return LazyResult(value) if is_ref(value) else value


def materialize(value: Any) -> Any:
    """``value`` with every reference inside replaced by the full result (for a tool's inputs: a
    tool needs the data itself). Parts without references are returned as they are, not copied."""
    if is_ref(value):
        return load(value[REF_KEY]["uri"], fresh=True)  # a tool may change its inputs
    if isinstance(value, LazyResult):
        return load(value._ref[REF_KEY]["uri"], fresh=True)
    if isinstance(value, dict):
        changed: dict[str, Any] | None = None
        for key, item in value.items():
            new = materialize(item)
            if new is not item:
                changed = changed if changed is not None else dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list):
        items = [materialize(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value
