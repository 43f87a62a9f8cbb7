"""Pytest fixtures over the real test services; import them in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.httpserver import LocalHTTPServer, local_http_server
from support.pgcluster import PostgresUnavailable, postgres_cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[dict[str, Any]]:
    """A throwaway PostgreSQL for the whole session: ``{host, port, user, password, database, dsn, url}``.

    Skips the requesting tests, with the reason, when no PostgreSQL server binaries are installed.
    """
    try:
        cluster = postgres_cluster()
        info = cluster.__enter__()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield info
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture(scope="session")
def http_server() -> Iterator[LocalHTTPServer]:
    """The local HTTP test server (routes in :mod:`support.httpserver`), shared by the session."""
    with local_http_server() as server:
        yield server
