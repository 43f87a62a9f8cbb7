"""Loading of the named queries (``queries.sql``) and the numbered migrations (``migrations/``)."""

from __future__ import annotations

import sqlite3
from functools import cache
from typing import NamedTuple

from noetl.store.sqlfiles import load_queries, migration_files


class Migration(NamedTuple):
    version: int
    name: str
    statements: tuple[str, ...]


@cache
def queries() -> dict[str, str]:
    """Every ``-- name: xyz`` block of ``queries.sql``, read once per process."""
    return load_queries(__package__)


@cache
def migrations() -> tuple[Migration, ...]:
    """The migrations shipped with the package, in version order, split into statements."""
    return tuple(
        Migration(version, name, split_statements(script))
        for version, name, script in migration_files(__package__)
    )


def split_statements(script: str) -> tuple[str, ...]:
    """Split a script into statements.

    ``executescript`` would be simpler but commits any open transaction first, and a migration
    has to run inside the transaction that also records it.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            if _has_code(statement):
                statements.append(statement)
            pending = ""
    if _has_code(pending):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending.strip()[:80]!r}")
    return tuple(statements)


def _has_code(sql: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines())
