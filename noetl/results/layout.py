"""A big result's JSON written in pieces, and the map of where each piece lies in it.

A result stored by reference is one JSON text, byte for byte what ``codec.dumps`` writes. Written
here instead, piece by piece (each top-level value, each value of a nested mapping, each slice of
about a megabyte of a long list), it comes with its **layout**: for a mapping, the byte range of
every value; for a long list, its length and the byte range of each slice. With the layout, a
template that reads ``{{ big.rows[0] }}`` or ``{{ big.rows | length }}`` decodes one slice or none,
not the whole result; and a whole read decodes it a slice at a time, so a thread doing it lets go
of the interpreter between slices (one ``orjson`` call over 100 MB holds it for a second).

The same list object met twice (a ``postgres`` result's ``rows`` and ``command_0.rows``) is
encoded once; its bytes appear twice in the text, as before.

Nodes (JSON, stored beside the result):

- ``[start, end]``: a value, decoded whole;
- ``{"s": start, "e": end, "k": {key: node}}``: a mapping;
- ``{"s": start, "e": end, "n": count, "c": [[first_index, start, end], ...]}``: a list in slices.

Pure: no I/O (reads go through a ``read(start, end) -> bytes`` the caller passes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from noetl.results.codec import loads
from noetl.results.encoded import EncodedList, position

try:
    import orjson
except ImportError:  # pragma: no cover - an environment installed before the dependency was added
    orjson = None  # type: ignore[assignment]

SLICE_BYTES = 1 << 20  # a list is written (and read) in slices of about this much JSON
MAX_DEPTH = 3  # mappings are mapped this deep (a result, its `data`, a mapping inside that)
MAX_KEYS = 256  # a mapping with more keys is one value in the layout
FIRST_SLICE_ITEMS = 256

Node = Any  # list[int] | dict[str, Any]
Reader = Callable[[int, int], "bytes | memoryview"]


class Unmappable(Exception):
    """The value needs the standard library's encoder (non-string keys, integers past 64 bits)."""


def encode(value: Any) -> tuple[list[bytes], Node | None]:
    """The JSON of ``value`` as pieces to join, and its layout (None when mapping it would tell
    nothing: a scalar, a short list, a value orjson cannot write)."""
    if orjson is None or not isinstance(value, dict | list | EncodedList):
        return [], None
    writer = _Writer()
    try:
        node = writer.write(value, 0)
    except (Unmappable, TypeError):
        return [], None
    return writer.parts, node if isinstance(node, dict) else None


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pos = 0
        self._seen: dict[int, tuple[int, int, Node]] = {}  # id(list) -> (first part, start, node)

    def put(self, data: bytes) -> None:
        self.parts.append(data)
        self.pos += len(data)

    def write(self, value: Any, depth: int) -> Node:
        if isinstance(value, EncodedList):
            return self._list(value)
        if type(value) is dict and depth < MAX_DEPTH and len(value) <= MAX_KEYS:
            return self._mapping(value, depth)
        if type(value) is list and len(value) > 1:
            return self._list(value)
        start = self.pos
        self.put(_dumps(value))
        return [start, self.pos]

    def _mapping(self, value: dict[str, Any], depth: int) -> Node:
        start = self.pos
        keys: dict[str, Node] = {}
        self.put(b"{")
        for number, (key, item) in enumerate(value.items()):
            if type(key) is not str:
                raise Unmappable(key)
            self.put((b',' if number else b'') + _dumps(key) + b":")
            keys[key] = self.write(item, depth + 1)
        self.put(b"}")
        if self.pos - start < SLICE_BYTES:
            return [start, self.pos]  # small: read whole, its inner ranges are not worth keeping
        return {"s": start, "e": self.pos, "k": keys}

    def _list(self, value: list[Any] | EncodedList) -> Node:
        seen = self._seen.get(id(value))
        if seen is not None:
            return self._again(*seen)
        first_part, start = len(self.parts), self.pos
        slices: list[list[int]] = []
        self.put(b"[")
        for index, body in (value.bodies() if isinstance(value, EncodedList) else _bodies(value)):
            if slices:
                self.put(b",")
            slices.append([index, self.pos, self.pos + len(body)])
            self.put(body)
        self.put(b"]")
        node: Node = [start, self.pos] if len(slices) < 2 else {"s": start, "e": self.pos, "n": len(value),
                                                                 "c": slices}
        self._seen[id(value)] = (first_part, start, node)
        return node

    def _again(self, first_part: int, start: int, node: Node) -> Node:
        """A list written before: its pieces again (the same bytes objects), its node shifted."""
        end = node[1] if isinstance(node, list) else node["e"]
        shift = self.pos - start
        taken = 0
        for part in self.parts[first_part:]:
            if taken >= end - start:
                break
            self.put(part)
            taken += len(part)
        return _shifted(node, shift)


def _bodies(value: list[Any]) -> Iterator[tuple[int, bytes]]:
    """(first index, JSON of the items without brackets) for slices of about SLICE_BYTES."""
    index, step = 0, FIRST_SLICE_ITEMS
    while index < len(value):
        body = _dumps(value[index:index + step])[1:-1]
        yield index, body
        index += step
        step = max(1, int(step * SLICE_BYTES / max(len(body), 1)))


def _shifted(node: Node, shift: int) -> Node:
    if isinstance(node, list):
        return [node[0] + shift, node[1] + shift]
    shifted: dict[str, Any] = {**node, "s": node["s"] + shift, "e": node["e"] + shift}
    if "k" in node:
        shifted["k"] = {key: _shifted(child, shift) for key, child in node["k"].items()}
    if "c" in node:
        shifted["c"] = [[first, low + shift, high + shift] for first, low, high in node["c"]]
    return shifted


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:  # an integer past 64 bits, a non-string key: the whole result goes the usual way
        raise Unmappable(str(exc)) from None


# reading -----------------------------------------------------------------------------------
def span(node: Node) -> tuple[int, int]:
    return (node[0], node[1]) if isinstance(node, list) else (node["s"], node["e"])


def is_list_node(node: Node) -> bool:
    return isinstance(node, dict) and "c" in node


def is_mapping_node(node: Node) -> bool:
    return isinstance(node, dict) and "k" in node


def decode_slice(node: Node, number: int, read: Reader) -> list[Any]:
    """The items of slice ``number`` of a list node."""
    _, low, high = node["c"][number]
    items: list[Any] = loads(b"[" + read(low, high) + b"]")
    return items


def slice_of(node: Node, index: int) -> int:
    """Which slice of a list node holds item ``index`` (0 <= index < n)."""
    return position([first for first, _low, _high in node["c"]], index)


def decode(node: Node, read: Reader) -> Any:
    """The whole value of ``node``, decoded a piece at a time."""
    if is_mapping_node(node):
        return {key: decode(child, read) for key, child in node["k"].items()}
    if is_list_node(node):
        items: list[Any] = []
        for number in range(len(node["c"])):
            items.extend(decode_slice(node, number, read))
        return items
    low, high = span(node)
    return loads(read(low, high))
