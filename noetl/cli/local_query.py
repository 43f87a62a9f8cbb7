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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from noetl.errors import InputError, NotFoundError
from noetl.limits import MAX_QUERY_BYTES, MAX_QUERY_ROWS, QUERY_TIMEOUT_SECONDS

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


def _deadline_handler(seconds: float) -> Callable[[], int]:
    """A progress handler that interrupts the statement once it has run ``seconds`` (a recursive CTE
    that never ends would otherwise hold the process past Ctrl-C: SQLite does not look at signals)."""
    deadline = time.monotonic() + seconds
    return lambda: int(time.monotonic() > deadline)


def query_local(db_path: Path, sql: str, *, write: bool = False,
                timeout_seconds: float = QUERY_TIMEOUT_SECONDS) -> dict[str, Any]:
    if not db_path.exists():
        raise NotFoundError(f"no local store at {db_path} (run a playbook first, or set NOETL_DATABASE_URL)")
    # Quoted: in a URI a `#` or `?` in the path ends it (`~/a#b/noetl.db` opened, and created, `~/a`
    # read-write) and `%41` is `A`.
    uri = f"file:{quote(str(db_path.absolute()))}" + ("" if write else "?mode=ro")
    conn = sqlite3.connect(uri, uri=True)
    try:
        conn.execute("ATTACH DATABASE ? AS noetl", (uri,))
        if not write:
            conn.set_authorizer(_read_only)
        conn.set_progress_handler(_deadline_handler(timeout_seconds), 10_000)
        cursor = conn.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        rows, truncated = _bounded_rows(cursor, columns)
        if write:
            conn.commit()
    except sqlite3.DatabaseError as exc:
        message = str(exc)
        if not write and ("authoriz" in message or "readonly" in message or "read-only" in message):
            raise InputError(READ_ONLY_HINT) from None
        if "interrupted" in message:
            raise InputError(f"query stopped after {timeout_seconds:g} s (the limit of a statement)") from None
        raise InputError(f"query failed: {message}") from None
    except sqlite3.Error as exc:
        raise InputError(f"query failed: {exc}") from None
    finally:
        conn.close()
    answer = {"columns": columns, "rows": rows, "rowcount": len(rows)}
    return {**answer, "truncated": True} if truncated else answer


def _bounded_rows(cursor: sqlite3.Cursor, columns: list[str]) -> tuple[list[list[Any]], bool]:
    """The answer's rows and whether it was cut: the bounds of PostgreSQL's answer, MAX_QUERY_ROWS
    rows and MAX_QUERY_BYTES of JSON (`SELECT printf('%.*c', 1000000, 'x') FROM big` is gigabytes)."""
    rows: list[list[Any]] = []
    size = 0
    for row in cursor:
        if _surely_too_long(row):
            return rows, True
        decoded = [_decode(c, v) for c, v in zip(columns, row, strict=True)]
        size += len(json.dumps(decoded, default=str))
        if len(rows) >= MAX_QUERY_ROWS or size > MAX_QUERY_BYTES:
            return rows, True
        rows.append(decoded)
    return rows, False


def _surely_too_long(row: tuple[Any, ...]) -> bool:
    """Whether the row's strings and blobs alone are longer than the answer may be: its JSON is at
    least as long, and building it for a blob of 500 MB (its text form is four times that) took
    minutes and gigabytes."""
    return sum(len(value) for value in row if isinstance(value, str | bytes)) > MAX_QUERY_BYTES


def _decode(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS and isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
