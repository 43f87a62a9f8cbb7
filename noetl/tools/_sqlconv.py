"""Turn values that database drivers return into JSON-serialisable ones.

Tool results end up in the event log as JSON, so every row value must survive ``json.dumps``.
The spec's conversions (Decimal, date/datetime, UUID, bytes) come from :mod:`noetl.jsonconv`, so
every tool converts alike; this module adds what only databases produce: intervals, NaN and
infinite numbers (JSON has neither), and driver-specific types such as ranges and network
addresses, which become their text form as psql would show them.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

from noetl.jsonconv import NotJsonable, to_jsonable


def sql_value_to_json(value: Any) -> Any:
    """Convert one driver value (recursively for arrays, structs and JSON) to a JSON value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal) and not value.is_finite():
        return None
    if isinstance(value, dict):
        return {str(key): sql_value_to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [sql_value_to_json(item) for item in value]
    if isinstance(value, dt.timedelta):
        return value.total_seconds()  # intervals as seconds: easy to compare and add up
    try:
        return to_jsonable(value)
    except NotJsonable:
        return str(value)


def rows_to_dicts(columns: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows as a list of ``{column: value}`` dicts with JSON-safe values."""
    return [
        {column: sql_value_to_json(value) for column, value in zip(columns, row, strict=False)}
        for row in rows
    ]
