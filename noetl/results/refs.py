"""What a result reference is, and the lazy mapping templates read it through.

Pure on purpose (no I/O here): the render environment of the DSL imports it. Loading goes through
a loader the runtime installs with :func:`use_loader` (a context variable, so each runtime's tasks
see their own store), falling back to the last loader installed in the process.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote

from noetl.dsl.render_budget import may_load
from noetl.results import layout, partial
from noetl.results.encoded import ReadInParts

REF_KEY = "_ref"
# A reference's sealed part (results/sealed.py): the key that opens the result as returned, and the
# secret values in it. The runtime reads it; templates never show it (:func:`without_sealing`).
SEALED_KEY = "sealed"
LAYOUT_KEY = "layout"  # in ``_ref``: the uri of the result's layout (results/layout.py), when it has one
PREVIEW_CHARS = 200
# A loop's aggregate by reference: its `results` resolve from the iterations' own recorded reports.
LOOP_PREFIX = "noetl://loop/"
PAGE_ITEMS = 500  # iterations read at once when a template walks a loop's results

Loader = Callable[[str, bool], Any]  # (uri, fresh) -> the decoded result; fresh: a copy no one else holds
ItemsLoader = Callable[[str, int, int], list[Any]]  # (uri, start, stop) -> those items of a loop's results
BytesLoader = Callable[[str, int, int], bytes]  # (uri, start, end) -> those bytes of a stored result

_loader: contextvars.ContextVar[Loader | None] = contextvars.ContextVar("noetl_result_loader", default=None)
_items_loader: contextvars.ContextVar[ItemsLoader | None] = contextvars.ContextVar("noetl_items_loader", default=None)
_fallback: list[Loader] = []
_items_fallback: list[ItemsLoader] = []
_bytes_loader: contextvars.ContextVar[BytesLoader | None] = contextvars.ContextVar("noetl_bytes_loader", default=None)
_bytes_fallback: list[BytesLoader] = []
# Results decoded while one task's configuration renders, by reference uri (see results_held).
_held: contextvars.ContextVar[dict[Any, Any] | None] = contextvars.ContextVar("noetl_results_held", default=None)


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


def loop_ref(*, execution_id: str, step: str, entry: int, count: int, preview: list[Any],
             frames: bool = False) -> dict[str, Any]:
    """The ``results`` of a loop's aggregate by reference: ``count`` iterations of entry ``entry`` of
    ``step``, read back from their recorded reports (nothing is stored twice). ``count`` stays inline,
    so ``| length`` reads nothing; the preview shows the first iterations."""
    uri = f"{LOOP_PREFIX}{execution_id}/{entry}/{quote(step, safe='')}" + ("?frames" if frames else "")
    text = json.dumps(preview, separators=(",", ":"), default=str)
    if len(preview) < count:
        text = text[:-1] + (",...]" if preview else "...]")
    return {REF_KEY: {"uri": uri, "kind": "loop", "count": count, "preview": preview_of(text)}}


def parse_loop_uri(uri: str) -> tuple[str, int, str]:
    """``(execution_id, entry, step)`` of a loop results uri; ValueError when it is not one."""
    if not uri.startswith(LOOP_PREFIX):
        raise ValueError(f"not a loop results reference: {uri!r}")
    execution_id, entry, step = uri[len(LOOP_PREFIX):].split("/", 2)
    return execution_id, int(entry), unquote(step)


# Reports being decided, not stored yet: a decision that ends a loop renders the templates that
# follow it (arcs, the next step's input) before its events are stored, and they may read the loop's
# last iterations. The runtimes note each report before the engine handles it and forget them once
# the engine is done; reading a loop's results looks here for what the store does not have yet.
# execution id -> (step, entry) -> loop index -> (event type, result, error)
_deciding: dict[str, dict[tuple[str, int], dict[int, tuple[str, Any, Any]]]] = {}


def note_report(event: Any) -> None:
    """Remember a loop iteration's report while the engine decides on it (see :func:`forget_reports`)."""
    index, command_id = event.meta.get("loop_index"), event.meta.get("command_id")
    if not isinstance(index, int) or not isinstance(command_id, str) or not event.node_name:
        return
    entry = command_id.rsplit("/", 2)[-2] if command_id.count("/") >= 2 else ""
    if entry.isdigit():
        by_step = _deciding.setdefault(event.execution_id, {})
        by_step.setdefault((event.node_name, int(entry)), {})[index] = (event.event_type, event.result, event.error)


def forget_reports(execution_id: str) -> None:
    _deciding.pop(execution_id, None)


def deciding_reports(execution_id: str, step: str, entry: int) -> dict[int, tuple[str, Any, Any]]:
    """The reports of that loop entry noted and not forgotten yet, by index."""
    return _deciding.get(execution_id, {}).get((step, entry), {})


def is_loop_ref(value: Any) -> bool:
    return is_ref(value) and str(value[REF_KEY]["uri"]).startswith(LOOP_PREFIX)


def use_loader(loader: Loader, items: ItemsLoader | None = None,
               pieces: BytesLoader | None = None) -> contextvars.Token[Loader | None]:
    """Install the loader references resolve through (and ``items``, which reads a slice of a loop's
    results, and ``pieces``, which reads a byte range of a stored result), for this task and the
    tasks it starts."""
    _remember(_fallback, loader)
    if items is not None:
        _remember(_items_fallback, items)
        _items_loader.set(items)
    if pieces is not None:
        _remember(_bytes_fallback, pieces)
        _bytes_loader.set(pieces)
    return _loader.set(loader)


def _remember(fallback: list[Any], loader: Any) -> None:
    if loader not in fallback:
        fallback.append(loader)
        del fallback[:-4]  # the newest few: processes have one or two stores


def load_bytes(uri: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of the stored result at ``uri`` (a piece its layout names)."""
    loader = _bytes_loader.get() or (_bytes_fallback[-1] if _bytes_fallback else None)
    if loader is None:
        from noetl.errors import StoreError

        raise StoreError(f"result {uri} cannot be read here: no result storage is open")
    return loader(uri, start, end)


def current_loader() -> Loader | None:
    return _loader.get() or (_fallback[-1] if _fallback else None)


def load_items(uri: str, start: int, stop: int) -> list[Any]:
    loader = _items_loader.get() or (_items_fallback[-1] if _items_fallback else None)
    if loader is None:
        from noetl.errors import StoreError

        raise StoreError(f"result {uri} cannot be read here: no result storage is open")
    return loader(uri, start, stop)


def load(uri: str, *, fresh: bool = False) -> Any:
    loader = current_loader()
    if loader is None:
        from noetl.errors import StoreError

        raise StoreError(f"result {uri} cannot be read here: no result storage is open")
    return loader(uri, fresh)


@contextmanager
def results_held() -> Iterator[None]:
    """Within the block, each result a template reads by reference is decoded once: every field of a
    task's configuration (and the render again on a thread after the inline one timed out) reads the
    same copy, which goes when the block ends. Without it, each ``{{ big.data.rows[0] }}`` decoded the
    whole result again (a result too big for the storage's cache: three fields, three decodes)."""
    if _held.get() is not None:
        yield
        return
    token = _held.set({})
    try:
        yield
    finally:
        _held.reset(token)


def load_result(inner: Mapping[str, Any], *, fresh: bool = False) -> Any:
    """The full result a reference's ``_ref`` stands for: the result as its step returned it where
    the reference opens its sealed copy (results/sealed.py), else the stored, redacted one."""
    held = None if fresh else _held.get()
    if held is None:
        return _load_result(inner, fresh=fresh)
    uri = str(inner["uri"])
    if uri not in held:
        held[uri] = _load_result(inner)
    return held[uri]


def _load_result(inner: Mapping[str, Any], *, fresh: bool = False) -> Any:
    from noetl.errors import NoetlError
    from noetl.results.sealed import opened

    may_load(int(inner.get("size") or 0))
    if isinstance(inner.get(LAYOUT_KEY), str):
        node = layout_root(inner[LAYOUT_KEY])
        if node is not None:  # decoded a piece at a time: a thread doing it lets other threads run
            return partial.Pieces(str(inner["uri"]), lambda low, high: load_bytes(str(inner["uri"]), low, high),
                                  lambda _span, compute: compute()).whole(node)
    sealed = sealed_part(inner)
    if sealed is not None:
        try:
            return opened(sealed, load(sealed["uri"]), fresh=fresh)
        except (ValueError, NoetlError) as exc:
            import logging

            logging.getLogger(__name__).warning("result %s: its sealed copy is unreadable (%s); it is read "
                                                "redacted", inner["uri"], exc)
    return load(inner["uri"], fresh=fresh)


class LazyResult(Mapping[str, Any]):
    """A reference seen from a template: inline fields (and ``_ref``) answer at once, any other key
    loads the full result on first access (and keeps it for the life of this object: one render).
    A reference with a layout (results/layout.py) loads only the part a key names instead."""

    __slots__ = ("_full", "_ref")

    def __init__(self, ref: dict[str, Any]) -> None:
        self._ref = ref
        self._full: Any = None

    def full(self) -> Any:
        if self._full is None:
            self._full = load_result(self._ref[REF_KEY])
        return self._full

    def _root(self) -> Any:
        """The root node of the result's layout, or None (no layout, or loaded whole already)."""
        uri = self._ref[REF_KEY].get(LAYOUT_KEY)
        if self._full is not None or not isinstance(uri, str):
            return None
        return layout_root(uri)

    def _pieces(self) -> partial.Pieces:
        uri = str(self._ref[REF_KEY]["uri"])
        return partial.Pieces(uri, lambda low, high: load_bytes(uri, low, high),
                              lambda span, compute: _held_piece((uri, *span), compute))

    def listed(self) -> Any:
        """The result as a list when it is one (a lazy one where its layout allows), else this mapping:
        what ``{{ big.data }}``, ``{{ big.data[0] }}`` and ``{{ big.data | length }}`` read."""
        if not str(self._ref[REF_KEY].get("preview", "")).startswith("["):
            return self
        node = self._root()
        if node is not None and layout.is_list_node(node):
            return partial.view(node, self._pieces())
        full = self.full()
        return full if isinstance(full, list) else self

    def __getitem__(self, key: str) -> Any:
        if key in self._ref:
            return without_sealing(self._ref[key])  # `{{ step._ref }}`: the reference, not its key
        node = self._root()
        if node is not None:
            if layout.is_mapping_node(node):
                return partial.view(node["k"][key], self._pieces())
            raise KeyError(key)  # a list: no keys
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
        keys = self._keys()
        return key in keys if keys is not None else False

    def _keys(self) -> Any:
        node = self._root()
        if node is not None:
            return node["k"] if layout.is_mapping_node(node) else None
        full = self.full()
        return full if isinstance(full, Mapping) else None

    def __iter__(self) -> Iterator[str]:
        keys = self._keys()
        return iter(keys) if keys is not None else iter(())

    def __len__(self) -> int:
        keys = self._keys()
        return len(keys) if keys is not None else 0

    def __repr__(self) -> str:
        return json.dumps(without_sealing(self._ref), separators=(",", ":"), default=str)

    __str__ = __repr__


_layouts: dict[str, Any] = {}  # layout uri -> its root node (a layout never changes: its uri is new)
_LAYOUTS_KEPT = 64


def layout_root(uri: str) -> Any:
    """The root node of the layout stored at ``uri``, kept for repeated reads (a remote worker would
    ask the server for it at each look into the result)."""
    root = _layouts.get(uri)
    if root is None:
        root = load(uri).get("root")
        _layouts[uri] = root
        while len(_layouts) > _LAYOUTS_KEPT:
            _layouts.pop(next(iter(_layouts)))
    return root


def _held_piece(key: tuple[str, int, int], compute: Callable[[], Any]) -> Any:
    """A decoded piece of a result, kept like a whole result while a task renders (results_held)."""
    held = _held.get()
    if held is None:
        return compute()
    if key not in held:
        held[key] = compute()  # type: ignore[index]
    return held[key]  # type: ignore[index]


class LazyItems(ReadInParts):
    """A loop's ``results`` by reference seen from a template: the length is inline, an item loads
    that one iteration's report, and walking them loads a page at a time (never the whole list)."""

    __slots__ = ("_page", "_page_start", "ref")

    def __init__(self, ref: dict[str, Any]) -> None:
        self.ref = ref
        self._page: list[Any] = []
        self._page_start = 0

    @property
    def uri(self) -> str:
        return str(self.ref[REF_KEY]["uri"])

    def __len__(self) -> int:
        return int(self.ref[REF_KEY].get("count") or 0)

    def _range(self, start: int, stop: int) -> list[Any]:
        return load_items(self.uri, start, stop)

    def _item(self, position: int) -> Any:
        if not self._page_start <= position < self._page_start + len(self._page):
            self._page, self._page_start = load_items(self.uri, position, position + 1), position
        return self._page[position - self._page_start]

    def __iter__(self) -> Iterator[Any]:
        size = len(self)
        for start in range(0, size, PAGE_ITEMS):
            self._page, self._page_start = load_items(self.uri, start, min(start + PAGE_ITEMS, size)), start
            yield from self._page

    def __repr__(self) -> str:
        return json.dumps(self.ref, separators=(",", ":"))

    __str__ = __repr__


def lazy(value: Any) -> Any:
    """What a template looks into: a reference becomes a :class:`LazyResult` (a loop's results a
    :class:`LazyItems`), anything else stays."""
    if not is_ref(value):
        return value
    return LazyItems(value) if is_loop_ref(value) else LazyResult(value)


def lazy_items(value: Any) -> Any:
    """A loop's results by reference as :class:`LazyItems` (what a filter or a loop receives), anything
    else as it is."""
    return LazyItems(value) if is_loop_ref(value) else value


def plain(value: Any) -> Any:
    """What a rendered value records: :class:`LazyItems` become their reference again (small, JSON),
    which a tool receives as the full list (:func:`materialize`)."""
    if isinstance(value, LazyItems):
        return value.ref
    return partial.plain_part(value)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def sealed_part(inner: Any) -> dict[str, Any] | None:
    """The ``sealed`` part of a reference's ``_ref`` that can open (its key not redacted)."""
    sealed = inner.get(SEALED_KEY) if isinstance(inner, dict) else None
    if not isinstance(sealed, dict) or not isinstance(sealed.get("uri"), str):
        return None
    key = sealed.get("key")
    return sealed if isinstance(key, str) and len(key) == 44 else None


def _is_sealing(value: dict[str, Any]) -> bool:
    """A reference's ``_ref`` that carries its sealed part."""
    return SEALED_KEY in value and isinstance(value.get("uri"), str) and isinstance(value[SEALED_KEY], dict)


def without_sealing(value: Any) -> Any:
    """``value`` as a template shows it: every reference inside without its sealed part (the key of
    a big result that holds a secret, and the secret values in it), which the runtime needs to read
    the result and nothing else may see: ``{{ step._ref }}``, ``{{ step | tojson }}``, ``{{ ctx }}``
    in a text. Parts without one are returned as they are, not copied."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, LazyResult):
        return without_sealing(value._ref)
    if isinstance(value, dict):
        if _is_sealing(value):
            return {key: item for key, item in value.items() if key != SEALED_KEY}
        changed: dict[str, Any] | None = None
        for key, item in value.items():
            if type(item) in _SCALARS:
                continue
            new = without_sealing(item)
            if new is not item:
                changed = changed if changed is not None else dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list | tuple):
        items = [without_sealing(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else type(value)(items)
    return value


def _materialized_items(value: dict[str, Any]) -> dict[str, Any]:
    changed: dict[str, Any] | None = None
    for key, item in value.items():
        if type(item) in _SCALARS:
            continue
        new = materialize(item)
        if new is not item:
            changed = changed if changed is not None else dict(value)
            changed[key] = new
    return value if changed is None else changed


def materialize(value: Any) -> Any:
    """``value`` with every reference inside replaced by the full result (for a tool's inputs: a
    tool needs the data itself). Parts without references are returned as they are, not copied."""
    kind = type(value)
    if kind in _SCALARS:  # most leaves: no reference can hide in them
        return value
    if kind is dict and REF_KEY in value and is_ref(value):
        return load_result(value[REF_KEY], fresh=True)  # a tool may change its inputs
    if isinstance(value, dict):
        if SEALED_KEY in value and _is_sealing(value):  # a `_ref` on its own (`{{ step | dictsort }}`)
            return without_sealing(value)
        return _materialized_items(value)
    if isinstance(value, LazyResult):
        return load_result(value._ref[REF_KEY], fresh=True)
    if isinstance(value, LazyItems):
        return load(value.uri, fresh=True)
    if isinstance(value, partial.PARTS):
        return value.value()
    if isinstance(value, list | tuple):
        items = [materialize(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else type(value)(items)
    return value
