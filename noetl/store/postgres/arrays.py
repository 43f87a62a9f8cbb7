"""Column arrays for the decision statements, sent in PostgreSQL's binary array format.

A group transaction's ``record_decisions`` passes about 27 arrays (one element per execution, event
or new command). For a plain list psycopg finds the element type on every call (it scans the list,
picks a dumper per element type, then dumps each element through it): 280-320 us of a worker's CPU
for a group of 13 chain steps. A list typed here has its element type known, so its dumper writes
the array in one pass: 135-150 us for the same group (about 12 us less per chain step). The SQL
casts (``%(x)b::text[]``) stay: they name the type for a reader and cost nothing when it matches.

Binary array layout (PostgreSQL's array_send): ndim, has-nulls flag, element type oid, then per
dimension its length and lower bound (1), then per element its byte length (-1: NULL) and bytes.
"""

from __future__ import annotations

import struct
from typing import Any

import psycopg
from psycopg._encodings import conn_encoding
from psycopg.adapt import Dumper
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

_NULL = b"\xff\xff\xff\xff"
_LENGTH = struct.Struct("!i")


class TextArray(list[str | None]):
    """A ``text[]`` parameter."""


class BigintArray(list[int]):
    """A ``bigint[]`` parameter (no NULLs)."""


class IntArray(list[int]):
    """An ``int[]`` parameter (no NULLs)."""


class BoolArray(list[bool]):
    """A ``bool[]`` parameter (no NULLs)."""


def _header(element_oid: int, length: int, has_null: bool) -> bytes:
    if not length:  # an empty array has no dimensions
        return struct.pack("!iiI", 0, 0, element_oid)
    return struct.pack("!iiIii", 1, int(has_null), element_oid, length, 1)


class _ArrayDumper(Dumper):
    """A dumper is made for every statement that passes its type: what it needs is found once, per class."""

    format = Format.BINARY
    element = ""  # the element type's name
    oid = 0  # the array type's oid (set per class from ``element``)
    _element_oid = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.element:
            cls.oid, cls._element_oid = pg_types[cls.element].array_oid, pg_types[cls.element].oid


class TextArrayDumper(_ArrayDumper):
    element = "text"

    def __init__(self, cls: type, context: Any = None) -> None:
        super().__init__(cls, context)
        encoding = conn_encoding(self.connection)
        self._encoding = encoding if encoding != "ascii" else "utf-8"  # as psycopg's own str dumpers

    def dump(self, obj: list[str | None]) -> bytes:
        parts: list[bytes] = [b""]
        has_null = False
        pack, encoding = _LENGTH.pack, self._encoding
        for item in obj:
            if item is None:
                parts.append(_NULL)
                has_null = True
            else:
                try:
                    data = item.encode(encoding)  # PostgreSQL refuses a NUL in text, as with any str
                except AttributeError:
                    raise psycopg.DataError(f"text[] element: expected str, got {type(item).__name__}") from None
                parts.append(pack(len(data)))
                parts.append(data)
        parts[0] = _header(self._element_oid, len(obj), has_null)
        return b"".join(parts)


class _FixedArrayDumper(_ArrayDumper):
    code = ""  # the element's struct code
    size = 0
    _element = struct.Struct("!i")  # an element with its length (set per class from ``code``)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._element = struct.Struct("!i" + cls.code)

    def dump(self, obj: list[Any]) -> bytes:
        pack, size = self._element.pack, self.size
        try:
            data = b"".join([pack(size, item) for item in obj])
        except struct.error as exc:  # out of the type's range, or not a number: as psycopg's own dumpers
            raise psycopg.DataError(f"{self.element}[] element: {exc}") from None
        return _header(self._element_oid, len(obj), False) + data


class BigintArrayDumper(_FixedArrayDumper):
    element, code, size = "int8", "q", 8


class IntArrayDumper(_FixedArrayDumper):
    element, code, size = "int4", "i", 4


class BoolArrayDumper(_FixedArrayDumper):
    """Each of a decision's bool arrays (one flag per execution): two encodings to pick from."""

    element, code, size = "bool", "?", 1
    _ELEMENTS = {False: b"\x00\x00\x00\x01\x00", True: b"\x00\x00\x00\x01\x01"}

    def dump(self, obj: list[Any]) -> bytes:
        elements = self._ELEMENTS
        try:
            data = b"".join([elements[item] for item in obj])
        except (KeyError, TypeError):  # only bools (and 0/1, which equal them) are bools
            raise psycopg.DataError(f"bool[] element: expected bool, got {obj!r:.60}") from None
        return _header(self._element_oid, len(obj), False) + data


# Registered once for every connection of the process (these types are NoETL's own).
for _cls, _dumper in ((TextArray, TextArrayDumper), (BigintArray, BigintArrayDumper), (IntArray, IntArrayDumper),
                      (BoolArray, BoolArrayDumper)):
    psycopg.adapters.register_dumper(_cls, _dumper)
