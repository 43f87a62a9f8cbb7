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


@pytest.fixture(scope="session")
def two_worker_deployment(pg_cluster: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Server + database workers w1 and w2 (concurrency 4) with default settings, started once and
    shared by the integration modules whose tests each register their own playbooks and look only at
    their own executions (conformance cases, result references, pipelines on the distributed runtime)."""
    # tests/integration is on sys.path once any of its modules is collected (they import each other so).
    from test_distributed_cluster import Cluster, create_database

    deployment = Cluster(create_database(pg_cluster), tmp_path_factory.mktemp("two-workers"))
    try:
        deployment.start_server()
        deployment.start_worker("w1", concurrency=4)
        deployment.start_worker("w2", concurrency=4)
        yield deployment
    finally:
        deployment.close()
