"""Pick a store backend from the settings or from a URL."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from noetl.errors import InputError, StoreError

if TYPE_CHECKING:
    from noetl.settings import Settings
    from noetl.store.base import Store

SQLITE_PREFIX = "sqlite://"
MEMORY_URL = "memory://"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


async def open_local_store(settings: Settings) -> Store:
    """The local runtime's store: SQLite at ``settings.sqlite_path``, opened."""
    from noetl.fileperms import private_directory
    from noetl.store.sqlite import SqliteStore

    try:
        private_directory(settings.home)  # the store, the key file, data files: the owner's only
    except OSError as exc:
        raise StoreError(f"cannot create NOETL_HOME {settings.home}: {exc.strerror}") from exc
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    return store


def store_from_url(url: str) -> Store:
    """A store for ``sqlite:///path``, ``memory://`` or ``postgresql://...``, not yet opened.

    ``sqlite:///relative/path`` and ``sqlite:////absolute/path`` follow the usual URL convention
    (three slashes, then the path); ``sqlite:///:memory:`` is a private in-memory database.
    """
    if url == MEMORY_URL:
        from noetl.store.memory import MemoryStore

        return MemoryStore()
    if url.startswith(SQLITE_PREFIX):
        from noetl.store.sqlite import SqliteStore

        return SqliteStore(_sqlite_path(url))
    if url.startswith(POSTGRES_PREFIXES):
        return _postgres_store(url)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise InputError(
        f"unsupported store URL scheme {scheme!r}: use sqlite:///PATH, memory:// or postgresql://..."
    )


def _sqlite_path(url: str) -> str:
    rest = url[len(SQLITE_PREFIX) :]
    if not rest.startswith("/") or rest == "/":
        raise InputError(f"invalid SQLite URL {url!r}: expected sqlite:///PATH")
    path = rest[1:]
    return path if path == ":memory:" else str(Path(path).expanduser())


def _postgres_store(url: str) -> Store:
    # Imported lazily: the local runtime must not pay for (or require) the PostgreSQL driver.
    try:
        module = importlib.import_module("noetl.store.postgres")
    except ModuleNotFoundError as exc:
        if exc.name == "noetl.store.postgres":
            raise StoreError("the PostgreSQL store is not available in this installation") from exc
        raise StoreError(f"the PostgreSQL store needs the {exc.name} package: {exc}") from exc
    store: Store = module.PostgresStore(url)
    return store
