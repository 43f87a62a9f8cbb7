"""Turn tool results into plain JSON values.

Tools hand back whatever their drivers produce (``Decimal`` from databases, ``datetime`` and
``UUID`` columns, ``bytes``). Results are stored in events as JSON, so every tool passes its result
through :func:`to_jsonable`, which applies the conversions of the spec (section 4):

- ``Decimal`` -> ``int`` when integral, else ``float``
- ``datetime`` -> ISO 8601 in UTC (a naive datetime is taken to be UTC already)
- ``date`` and ``time`` -> ISO 8601
- ``UUID`` -> ``str``; ``bytes`` -> base64 ``str``
- tuples, lists, sets -> lists (sets sorted when their items allow it, so results are stable)
- mappings -> dicts; ``Enum`` -> its value; dataclass instances -> dicts

Anything else raises :class:`NotJsonable`, naming where in the value the offending object sits.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any


class NotJsonable(TypeError):
    """A value has no JSON representation. ``path`` locates it, e.g. ``$.rows[3].blob``."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.type_name = repr(value) if isinstance(value, float) else type(value).__name__
        self._segments: list[str] = []

    @property
    def path(self) -> str:
        return "$" + "".join(reversed(self._segments))

    def inside(self, segment: str) -> NotJsonable:
        """Record that the offending value sits under ``segment`` (called while unwinding)."""
        self._segments.append(segment)
        return self

    def __str__(self) -> str:
        return f"{self.type_name} at {self.path} is not JSON-serialisable"


_SCALARS = (str, int, float, bool, type(None))


def to_jsonable(value: Any) -> Any:
    """Return ``value`` as nested dicts, lists, str, int, float, bool and None."""
    # The common case (a scalar) does no more than one isinstance check (and a float two more).
    if isinstance(value, _SCALARS):
        if type(value) is float and not math.isfinite(value):
            raise NotJsonable(value)  # NaN and Infinity are not JSON: no store would keep them
        return value
    if isinstance(value, Mapping):
        return _convert_mapping(value)
    if isinstance(value, list | tuple):
        return _convert_items(value)
    if isinstance(value, set | frozenset):
        return _convert_items(_stable_order(value))
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _convert_mapping(dataclasses.asdict(value))
    converter = _converter_for(value)
    if converter is None:
        raise NotJsonable(value)
    return converter(value)


def parse_json_text(value: Any) -> Any:
    """A string holding a JSON document as the value it encodes; any other string, and anything
    that is not a string, as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# Paths are only built when something fails, so converting large results costs no string work.
def _convert_mapping(value: Mapping[Any, Any]) -> dict[Any, Any]:
    converted: dict[Any, Any] = {}
    for key, item in value.items():
        try:
            converted[_convert_key(key)] = to_jsonable(item)
        except NotJsonable as exc:
            raise exc.inside(f".{key}") from None
    return converted


def _convert_items(items: Iterable[Any]) -> list[Any]:
    converted: list[Any] = []
    for index, item in enumerate(items):
        try:
            converted.append(to_jsonable(item))
        except NotJsonable as exc:
            raise exc.inside(f"[{index}]") from None
    return converted


def _convert_key(key: Any) -> str | int | float | bool | None:
    # json.dumps accepts str, int, float, bool and None keys; other keys go through the scalar
    # conversions (a date key becomes its ISO string) and must end up as one of those.
    if isinstance(key, _SCALARS):
        return key
    converted = to_jsonable(key)
    if not isinstance(converted, _SCALARS):
        raise NotJsonable(key).inside(".<key>")
    return converted


def _stable_order(items: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:  # mixed types do not compare: keep iteration order
        return list(items)


def _decimal(value: Decimal) -> int | float:
    if value.is_finite() and value == value.to_integral_value():
        return int(value)
    return float(value)


def _datetime(value: dt.datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=dt.UTC).isoformat()
    return value.astimezone(dt.UTC).isoformat()


def _isoformat(value: dt.date | dt.time) -> str:
    return value.isoformat()


def _bytes(value: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _converter_for(value: Any) -> Callable[[Any], Any] | None:
    # datetime is a subclass of date, so it is tested first.
    if isinstance(value, dt.datetime):
        return _datetime
    if isinstance(value, dt.date | dt.time):
        return _isoformat
    if isinstance(value, Decimal):
        return _decimal
    if isinstance(value, uuid.UUID):
        return str
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes
    return None
