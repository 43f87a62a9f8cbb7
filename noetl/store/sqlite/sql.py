"""Loading of the named queries (``queries.sql``) and the numbered migrations (``migrations/``)."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib import resources

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^(\d+)_(\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


@cache
def queries() -> dict[str, str]:
    """Every ``-- name: xyz`` block of ``queries.sql``, read once per process."""
    text = resources.files(__package__).joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_named_queries(text)


def parse_named_queries(text: str) -> dict[str, str]:
    parts = _NAME_LINE.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    named: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in named:
            raise ValueError(f"query {name!r} is defined twice in queries.sql")
        named[name] = body.strip()
    return named


@cache
def migrations() -> tuple[Migration, ...]:
    """The migrations shipped with the package, in version order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            statements = split_statements(entry.read_text(encoding="utf-8"))
            found.append(Migration(int(match.group(1)), match.group(2), statements))
    found.sort(key=lambda migration: migration.version)
    return tuple(found)


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
