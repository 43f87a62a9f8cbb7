"""A long list kept as its JSON: what a big ``postgres`` result's rows are until they are stored.

Pure (no I/O). ``codec.dumps`` writes it as it is (an ``orjson.Fragment``), ``layout.encode`` maps
its slices, and every reader sees a sequence of plain items.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import orjson


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def json_fragment(value: Any) -> Any:
    """The ``default`` of ``orjson.dumps``: an :class:`EncodedList` is written as its JSON."""
    if isinstance(value, EncodedList):
        return orjson.Fragment(value.json())
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


class ReadInParts(Sequence[Any]):
    """A list that reads its items a part at a time. Subclasses give ``__len__``, ``_item`` (one
    item by its checked position) and, where a run of items reads cheaper together, ``_range``;
    indexing and slicing behave as a list's."""

    __slots__ = ()

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1 or start >= stop:
                return [self._item(i) for i in range(start, stop, step)]
            return self._range(start, stop)
        return self._item(item_at(index, len(self)))

    def _item(self, position: int) -> Any:
        raise NotImplementedError

    def _range(self, start: int, stop: int) -> list[Any]:
        return [self._item(i) for i in range(start, stop)]


class EncodedList(ReadInParts):
    """A long list kept as its JSON, a slice of items at a time (a ``postgres`` result's rows, each
    fetched batch encoded as it comes): a million rows never exist as a million dicts. It reads as a
    list (items decoded a slice at a time); written out, its JSON goes as it is."""

    __slots__ = ("_bodies", "_count", "_firsts", "_last")

    def __init__(self) -> None:
        self._bodies: list[bytes] = []
        self._firsts: list[int] = []
        self._count = 0
        self._last: tuple[int, list[Any]] = (-1, [])

    def extend_encoded(self, items: list[Any]) -> None:
        """Append ``items``, kept only as their JSON."""
        if items:
            self._bodies.append(orjson.dumps(items)[1:-1])
            self._firsts.append(self._count)
            self._count += len(items)

    def bodies(self) -> Iterator[tuple[int, bytes]]:
        return zip(self._firsts, self._bodies, strict=True)

    def json(self) -> bytes:
        return b"[" + b",".join(self._bodies) + b"]"

    def value(self) -> list[Any]:
        items: list[Any] = loads(self.json())
        return items

    def _slice(self, number: int) -> list[Any]:
        if self._last[0] != number:
            self._last = (number, loads(b"[" + self._bodies[number] + b"]"))
        return self._last[1]

    def __len__(self) -> int:
        return self._count

    def _item(self, at: int) -> Any:
        number = position(self._firsts, at)
        return self._slice(number)[at - self._firsts[number]]

    def __iter__(self) -> Iterator[Any]:
        for number in range(len(self._bodies)):
            yield from self._slice(number)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EncodedList):
            return self.json() == other.json()
        return isinstance(other, list) and len(other) == self._count and list(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.value())

    __str__ = __repr__


def item_at(index: Any, size: int) -> int:
    """``index`` (negative from the end) as a position in a list of ``size`` items, as a list
    checks it: TypeError for a non-integer, IndexError out of range."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"list indices must be integers or slices, not {type(index).__name__}")
    at = index + size if index < 0 else index
    if not 0 <= at < size:
        raise IndexError("list index out of range")
    return at


def position(firsts: list[int], index: int) -> int:
    """The number of the slice whose first index is the last one at or before ``index``."""
    low, high = 0, len(firsts) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if firsts[middle] <= index:
            low = middle
        else:
            high = middle - 1
    return low


def plain_lists(value: Any) -> Any:
    """``value`` with each :class:`EncodedList` at its top level or one level down decoded (what an
    event records when the result stays inline after all)."""
    if isinstance(value, EncodedList):
        return value.value()
    if isinstance(value, dict) and any(isinstance(item, EncodedList | dict) for item in value.values()):
        return {key: plain_lists(item) if isinstance(item, EncodedList | dict) else item
                for key, item in value.items()}
    return value
