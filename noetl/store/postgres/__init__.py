"""PostgreSQL backend of the store: the distributed runtime's event log, catalog and command queue."""

from noetl.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
