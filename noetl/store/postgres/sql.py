"""Named queries (``queries.sql``) and numbered migrations (``migrations/``) of the PostgreSQL store."""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

from noetl.store.sqlfiles import load_queries, migration_files


class Migration(NamedTuple):
    version: int
    name: str
    script: str  # run as one multi-statement script (simple query protocol, no parameters)


@cache
def queries() -> dict[str, str]:
    """Every ``-- name: xyz`` block of ``queries.sql``, read once per process."""
    return load_queries(__package__)


@cache
def migrations() -> tuple[Migration, ...]:
    """The migrations shipped with the package, in version order."""
    return tuple(Migration(version, name, script) for version, name, script in migration_files(__package__))
