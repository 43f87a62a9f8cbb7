"""`noetl query` on the embedded store: read-only SQL over the local SQLite file.

The file is also attached under the name ``noetl`` so the queries the user guides show for
PostgreSQL (``SELECT ... FROM noetl.event WHERE execution_id = ...``) run unchanged.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from noetl.errors import InputError, NotFoundError

JSON_COLUMNS = frozenset({"result", "error", "meta", "payload"})


def query_local(db_path: Path, sql: str) -> dict[str, Any]:
    if not db_path.exists():
        raise NotFoundError(f"no local store at {db_path} (run a playbook first, or set NOETL_DATABASE_URL)")
    uri = f"file:{db_path}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        conn.execute("ATTACH DATABASE ? AS noetl", (uri,))
        cursor = conn.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        rows = [[_decode(c, v) for c, v in zip(columns, row, strict=True)] for row in cursor.fetchall()]
    except sqlite3.OperationalError as exc:
        message = str(exc)
        if "readonly" in message or "read-only" in message:
            raise InputError("the local store is queried read-only") from None
        raise InputError(f"query failed: {message}") from None
    except sqlite3.Error as exc:
        raise InputError(f"query failed: {exc}") from None
    finally:
        conn.close()
    return {"columns": columns, "rows": rows, "rowcount": len(rows)}


def _decode(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS and isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
