"""Named queries (``queries.sql``) and numbered migrations (``migrations/``) of the PostgreSQL store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from noetl.store.sqlite.sql import parse_named_queries

_MIGRATION_FILE = re.compile(r"^(\d+)_(\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    script: str  # run as one multi-statement script (simple query protocol, no parameters)


@cache
def queries() -> dict[str, str]:
    """Every ``-- name: xyz`` block of ``queries.sql``, read once per process."""
    text = resources.files(__package__).joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_named_queries(text)


@cache
def migrations() -> tuple[Migration, ...]:
    """The migrations shipped with the package, in version order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    return tuple(found)
