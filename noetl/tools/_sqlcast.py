"""Cast source values to a PostgreSQL target column's type before they are written.

A ``transfer`` moves rows between systems whose types differ (JSON from HTTP, DuckDB values,
another PostgreSQL's columns): ``"42"`` or ``42.0`` going into an ``integer`` column becomes
``42``, ``"yes"`` into a ``boolean`` becomes ``True``, a mapping into ``text`` becomes its JSON.
What has no Python-side cast (dates, intervals, ranges, ...) goes to COPY as text, which
PostgreSQL parses with the column type's own input function.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from psycopg.types.json import Jsonb

from noetl.errors import ToolError
from noetl.tools._sqlconv import sql_value_to_json

Cast = Callable[[Any], Any]

_INTEGERS = ("smallint", "integer", "bigint")
_FLOATS = ("real", "double precision")
_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    number = Decimal(str(value).strip())
    if number != number.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def _to_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value).strip())


def _to_float(value: Any) -> float:
    return float(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean")


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(sql_value_to_json(value))
    return str(sql_value_to_json(value))


def _to_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            json.loads(value)
            return value  # already JSON text
        except ValueError:
            pass
    return Jsonb(sql_value_to_json(value))


def _as_is(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(sql_value_to_json(value))
    return value


def caster(type_sql: str, category: str) -> Cast:
    """The cast for a column of type ``type_sql`` (``format_type``) and ``pg_type.typcategory``."""
    base = type_sql.split("(")[0].strip()
    if category == "json":
        return _to_json
    if base in _INTEGERS:
        return _to_int
    if base in _FLOATS:
        return _to_float
    if base == "numeric":
        return _to_decimal
    if category == "B":
        return _to_bool
    if category == "S":
        return _to_text
    return _as_is


def cast_rows(rows: list[dict[str, Any]], columns: list[tuple[str, str, Cast]],
              offset: int = 0) -> list[tuple[Any, ...]]:
    """``rows`` as tuples in column order: ``columns`` is ``(target column, source field, cast)``.
    A value that cannot be cast is an error naming the row (counted from ``offset``) and column."""
    out = []
    for index, row in enumerate(rows, offset):
        values = []
        for column, field, cast in columns:
            value = lookup(row, field)
            if value is not None:
                try:
                    value = cast(value)
                except (ValueError, TypeError, InvalidOperation) as exc:
                    # decimal's own message is a list of signal classes: say what it means
                    reason = "not a number" if isinstance(exc, InvalidOperation) else exc
                    raise ToolError(f"transfer: row {index}: cannot cast {field!r} = {value!r} to the type of "
                                    f"column {column!r}: {reason}", kind="data") from None
            values.append(value)
        out.append(tuple(values))
    return out


def lookup(row: dict[str, Any], field: str) -> Any:
    """``row[field]``, or a dotted path into nested objects (``address.city``)."""
    if field in row or "." not in field:
        return row.get(field)
    value: Any = row
    for part in field.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
