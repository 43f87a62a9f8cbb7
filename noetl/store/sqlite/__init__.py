"""Embedded SQLite backend of the store (the local runtime's default)."""

from noetl.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
