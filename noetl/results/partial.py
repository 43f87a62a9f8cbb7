"""Parts of a stored result, read through its layout (results/layout.py) as a template asks for them.

``{{ big.rows[0] }}`` on a result with a layout decodes the one slice of ``rows`` that holds item 0;
``{{ big.rows | length }}`` decodes nothing (the length is in the layout); a part a template renders
whole (``{{ big.rows }}``) is decoded whole, as it was before, and recorded as plain JSON.

Pure on purpose, like results/refs.py: reads go through the :class:`Pieces` a reference hands in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from noetl.dsl.render_budget import may_load
from noetl.results import layout
from noetl.results.encoded import EncodedList, ReadInParts
from noetl.results.layout import Node

BytesReader = Callable[[int, int], bytes]
Cache = Callable[[tuple[int, int], Callable[[], Any]], Any]  # (range, compute) -> the value, kept per task


class Pieces:
    """One stored result, read by byte range."""

    __slots__ = ("_cache", "_read", "uri")

    def __init__(self, uri: str, read: BytesReader, cache: Cache) -> None:
        self.uri = uri
        self._read = read
        self._cache = cache

    def whole(self, node: Node) -> Any:
        """The value of ``node``: its bytes read at once, decoded a piece at a time."""
        low, high = layout.span(node)
        may_load(high - low)
        return self._cache((low, high), lambda: _decoded_within(node, low, self._read(low, high)))

    def slice_items(self, node: Node, number: int) -> list[Any]:
        _, low, high = node["c"][number]
        may_load(high - low)
        items: list[Any] = self._cache((low, high), lambda: layout.decode_slice(node, number, self._read))
        return items


def _decoded_within(node: Node, offset: int, data: bytes) -> Any:
    view = memoryview(data)
    return layout.decode(node, lambda low, high: view[low - offset:high - offset])


def view(node: Node, pieces: Pieces) -> Any:
    """What a template sees for ``node``: a lazy mapping, a lazy list, or the decoded value."""
    if layout.is_mapping_node(node):
        return LazyMapping(node, pieces)
    if layout.is_list_node(node):
        return LazyList(node, pieces)
    return pieces.whole(node)


class LazyPart:
    """A mapping or a list inside a stored result, not decoded yet."""

    __slots__ = ("_node", "_pieces")

    def __init__(self, node: Node, pieces: Pieces) -> None:
        self._node = node
        self._pieces = pieces

    def value(self) -> Any:
        """The part decoded whole (what is recorded when a template renders it)."""
        return self._pieces.whole(self._node)

    def __repr__(self) -> str:
        return repr(self.value())

    __str__ = __repr__


class LazyMapping(LazyPart, Mapping[str, Any]):
    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        return view(self._node["k"][key], self._pieces)

    def __contains__(self, key: object) -> bool:
        return key in self._node["k"]

    def __iter__(self) -> Iterator[str]:
        return iter(self._node["k"])

    def __len__(self) -> int:
        return len(self._node["k"])


class LazyList(LazyPart, ReadInParts):
    """A long list inside a stored result: its length from the layout, an item from its slice."""

    __slots__ = ()

    def __len__(self) -> int:
        return int(self._node["n"])

    def _item(self, position: int) -> Any:
        number = layout.slice_of(self._node, position)
        return self._pieces.slice_items(self._node, number)[position - self._node["c"][number][0]]

    def _range(self, start: int, stop: int) -> list[Any]:
        items: list[Any] = []
        number = layout.slice_of(self._node, start)
        slices = self._node["c"]
        while number < len(slices) and slices[number][0] < stop:
            first = slices[number][0]
            chunk = self._pieces.slice_items(self._node, number)
            items.extend(chunk[max(start - first, 0):stop - first])
            number += 1
        return items

    def __iter__(self) -> Iterator[Any]:
        for number in range(len(self._node["c"])):
            yield from self._pieces.slice_items(self._node, number)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyPart):
            other = other.value()
        return isinstance(other, list) and len(other) == len(self) and list(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Any) -> Any:
        return self.value() + (other.value() if isinstance(other, LazyPart) else other)

    def __radd__(self, other: Any) -> Any:
        return other + self.value()


# What reads as a list or a mapping but is not one yet: decoded whole where a value is recorded.
PARTS = (LazyPart, EncodedList)


def plain_part(value: Any) -> Any:
    """A part as plain JSON values (decoded whole); anything else as it is."""
    return value.value() if isinstance(value, PARTS) else value
