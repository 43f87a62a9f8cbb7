"""`noetl query` on the embedded store: read-only SQL over the local SQLite file.

The file is also attached under the name ``noetl`` so the queries the user guides show for
PostgreSQL (``SELECT ... FROM noetl.event WHERE execution_id = ...``) run unchanged.

Read-only twice over: the file is opened with ``mode=ro``, and an authorizer allows only reading
(``SELECT``, column reads, functions, read-only pragmas), because ``mode=ro`` alone still lets
``ATTACH`` and ``VACUUM INTO`` create files elsewhere. ``--write`` opens it read-write, for the
user who means to change their own store (``DELETE FROM noetl.event WHERE ...``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from noetl.errors import InputError, NotFoundError

JSON_COLUMNS = frozenset({"result", "error", "meta", "payload", "data"})


_READING = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                      getattr(sqlite3, "SQLITE_RECURSIVE", 33)})
_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                           "foreign_key_list", "database_list"})
_WRITING_FUNCTIONS = frozenset({"load_extension", "writefile", "edit", "readfile"})
READ_ONLY_HINT = "the local store is queried read-only; pass --write to change it"


def _read_only(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _WRITING_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action in _READING:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def query_local(db_path: Path, sql: str, *, write: bool = False) -> dict[str, Any]:
    if not db_path.exists():
        raise NotFoundError(f"no local store at {db_path} (run a playbook first, or set NOETL_DATABASE_URL)")
    uri = f"file:{db_path}" + ("" if write else "?mode=ro")
    conn = sqlite3.connect(uri, uri=True)
    try:
        conn.execute("ATTACH DATABASE ? AS noetl", (uri,))
        if not write:
            conn.set_authorizer(_read_only)
        cursor = conn.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        rows = [[_decode(c, v) for c, v in zip(columns, row, strict=True)] for row in cursor.fetchall()]
        if write:
            conn.commit()
    except sqlite3.DatabaseError as exc:
        message = str(exc)
        if not write and ("authoriz" in message or "readonly" in message or "read-only" in message):
            raise InputError(READ_ONLY_HINT) from None
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
