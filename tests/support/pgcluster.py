"""A throwaway PostgreSQL cluster for tests.

``initdb`` into a temporary directory, start it on a free port listening on 127.0.0.1 only (plus a
unix socket inside the temporary directory), create a database and a login role with a password,
and require that password for TCP connections (scram-sha-256), so tests exercise real password
authentication. Everything is stopped and removed afterwards.

PostgreSQL refuses to run as root; when the tests run as root the server runs as the ``postgres``
(or ``nobody``) account instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here; tests that need one are skipped with this reason."""


def find_postgres_bindir() -> Path:
    """The directory holding initdb/pg_ctl: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if all((Path(candidate) / name).exists() for name in SERVER_BINARIES):
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin; "
        "install them (Debian: apt-get install postgresql) to run the PostgreSQL tests"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, when we are root (else None)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable(
        "running as root and there is no 'postgres' or 'nobody' account to run PostgreSQL"
    )


def _run(command: list[str], account: pwd.struct_passwd | None, *, check: bool = True) -> None:
    if account is not None:
        command = ["runuser", "-u", account.pw_name, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )


def _write_config(data_dir: Path, port: int, socket_dir: Path) -> None:
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir}'",
        "fsync": "off",  # a throwaway cluster: durability buys nothing and costs time
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "100",
        "shared_buffers": "32MB",
        "password_encryption": "'scram-sha-256'",
    }
    with (data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# noetl test cluster\n")
        for key, value in settings.items():
            conf.write(f"{key} = {value}\n")
    (data_dir / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8"
    )


def _create_role_and_database(socket_dir: Path, port: int, superuser: str, info: dict[str, Any]) -> None:
    import psycopg
    from psycopg import sql

    admin = psycopg.connect(
        host=str(socket_dir), port=port, user=superuser, dbname="postgres", autocommit=True
    )
    with admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(info["user"]), sql.Literal(info["password"])
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(info["database"]), sql.Identifier(info["user"])
            )
        )


@contextlib.contextmanager
def postgres_cluster() -> Iterator[dict[str, Any]]:
    """Run a temporary cluster; yields ``{host, port, user, password, database, dsn, url, ...}``."""
    bindir = find_postgres_bindir()
    account = _server_account()
    base = Path(tempfile.mkdtemp(prefix="noetl-pg-"))
    data_dir = base / "data"
    log_file = base / "server.log"
    superuser = "noetl_admin"
    port = free_port()
    info: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "user": "noetl_test",
        # Long and distinctive, so a test can tell for sure whether it leaked into a message.
        "password": "pw-" + secrets.token_hex(12),
        "database": "noetl_test",
        "superuser": superuser,
        "socket_dir": str(base),
        "bindir": str(bindir),
    }
    info["dsn"] = (
        f"host={info['host']} port={port} user={info['user']} password={info['password']} dbname={info['database']}"
    )
    info["url"] = f"postgresql://{info['user']}:{info['password']}@{info['host']}:{port}/{info['database']}"
    started = False
    try:
        if account is not None:
            os.chown(base, account.pw_uid, account.pw_gid)
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            account,
        )
        _write_config(data_dir, port, base)
        _run(
            [str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-w", "-t", "60", "start"],
            account,
        )
        started = True
        _create_role_and_database(base, port, superuser, info)
        yield info
    finally:
        if started:
            _run(
                [str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
                account,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)
