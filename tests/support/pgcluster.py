"""A throwaway PostgreSQL cluster for tests.

The cluster logic lives in :mod:`noetl.demo.postgres` (``noetl demo postgres`` uses the same code):
``initdb`` into a temporary directory, start it on a free port listening on 127.0.0.1 only (plus a
unix socket inside the temporary directory), create a database and a login role with a password,
and require that password for TCP connections (scram-sha-256), so tests exercise real password
authentication. Everything is stopped and removed afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from noetl.demo.postgres import (
    LocalCluster,
    PostgresUnavailable,
    find_postgres_bindir,
    free_port,
    run_as,
    server_account,
)

__all__ = ["PostgresUnavailable", "find_postgres_bindir", "free_port", "postgres_cluster", "_run", "_server_account"]

# Older names, kept for the tests that drive pg_ctl themselves.
_run = run_as
_server_account = server_account


@contextlib.contextmanager
def postgres_cluster(*, durable: bool = False) -> Iterator[dict[str, Any]]:
    """Run a temporary cluster; yields ``{host, port, user, password, database, dsn, url, ...}``.
    ``durable``: fsync and synchronous_commit on (for durability figures), else off (faster tests)."""
    base = Path(tempfile.mkdtemp(prefix="noetl-pg-"))
    cluster = LocalCluster.new(
        base,
        port=free_port(),
        user="noetl_test",
        # Long and distinctive, so a test can tell for sure whether it leaked into a message.
        password="pw-" + secrets.token_hex(12),
        database="noetl_test",
        durable=durable,
    )
    try:
        cluster.create()
        yield cluster.info.as_dict()
    finally:
        cluster.stop()
        _remove_in_background(base, Path(cluster.info.socket_dir))


def _remove_in_background(*directories: Path) -> None:
    """Remove a stopped cluster's directories without waiting: after a whole suite the data
    directory holds every test's database (tens of thousands of files), and on a machine whose disk
    is busy deleting them took longer than the last test's timeout, which the session's teardown
    counts against."""
    # The shell puts rm in the background and exits at once, so no child is left to reap.
    subprocess.run(["sh", "-c", 'rm -rf -- "$@" &', "sh", *map(str, directories)], check=False,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
