"""A local throwaway PostgreSQL: ``noetl demo postgres`` and the test suite's ``pg_cluster``.

``initdb`` into a directory, listen on 127.0.0.1 only (plus a unix socket for the superuser),
create a login role with a password and a database it owns, and require that password for TCP
connections (scram-sha-256), so the examples and the tests use real password authentication.

Layout of a cluster directory (the tests rely on it)::

    <base>/data          the data directory
    <base>/server.log    the server's log
    <base>/.s.PGSQL.N    the unix socket (unless the path would be too long, see ``socket_dir``)
    <base>/cluster.json  how to reach it (demo clusters only; mode 0600, it holds the password)

PostgreSQL refuses to run as root; when NoETL runs as root the server runs as the ``postgres``
(or ``nobody``) account instead, which must be able to reach the directory.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
SUPERUSER = "noetl_admin"
STATE_FILE = "cluster.json"
# Unix socket paths are limited to 107 bytes; leave room for "/.s.PGSQL.65535".
_MAX_SOCKET_DIR = 90

# What `noetl demo postgres` creates; examples/credentials/pg_local.yaml holds the same values.
DEMO_PORT = 54321
DEMO_USER = "noetl_demo"
DEMO_PASSWORD = "demo-pg-pass"
DEMO_DATABASE = "noetl_demo"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (or no account to run them as)."""


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
        "install them (Debian: apt-get install postgresql)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def server_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, when we are root (else None)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root and there is no 'postgres' or 'nobody' account to run PostgreSQL")


def run_as(command: list[str], account: pwd.struct_passwd | None, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a server command, as ``account`` when given (we are root)."""
    if account is not None:
        command = ["runuser", "-u", account.pw_name, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def reachable_by(account: pwd.struct_passwd | None, directory: Path) -> bool:
    """Whether the server account can write into ``directory`` (always true when not root)."""
    if account is None:
        return True
    return run_as(["test", "-w", str(directory)], account, check=False).returncode == 0


@dataclass
class ClusterInfo:
    """How to reach a cluster; ``as_dict()`` is what the tests' ``pg_cluster`` fixture yields."""

    port: int
    user: str
    password: str
    database: str
    base: str
    socket_dir: str
    bindir: str
    host: str = "127.0.0.1"
    superuser: str = SUPERUSER
    # fsync, synchronous_commit and full_page_writes on: what a durability figure needs. Off by
    # default: a throwaway or demo cluster gains nothing from durability and pays for it in time.
    durable: bool = False

    @property
    def data_dir(self) -> Path:
        return Path(self.base) / "data"

    @property
    def log_file(self) -> Path:
        return Path(self.base) / "server.log"

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} password={self.password} dbname={self.database}"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def credential(self, name: str = "pg_local") -> dict[str, Any]:
        """A NoETL postgres credential document for this cluster."""
        return {
            "name": name,
            "type": "postgres",
            "description": f"local PostgreSQL at {self.host}:{self.port}",
            "data": {"host": self.host, "port": self.port, "user": self.user,
                     "password": self.password, "database": self.database},
        }

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dsn": self.dsn, "url": self.url}


@dataclass
class LocalCluster:
    """One PostgreSQL cluster in a directory: create, start, stop."""

    info: ClusterInfo
    account: pwd.struct_passwd | None = field(default_factory=server_account)

    @classmethod
    def new(cls, base: Path, *, port: int, user: str, password: str, database: str,
            durable: bool = False) -> LocalCluster:
        bindir = find_postgres_bindir()
        account = server_account()
        info = ClusterInfo(port=port, user=user, password=password, database=database, base=str(base),
                           socket_dir=str(_socket_dir(base, account)), bindir=str(bindir), durable=durable)
        return cls(info, account)

    # lifecycle -----------------------------------------------------------------------------
    def initialised(self) -> bool:
        return (self.info.data_dir / "PG_VERSION").exists()

    def create(self) -> None:
        """initdb, start, and create the role and database."""
        self._prepare_directory()
        self._initdb()
        self.start()
        self._create_role_and_database()

    def start(self, *, port: int | None = None) -> None:
        options = ["-o", f"-p {port}"] if port else []
        run_as([self._bin("pg_ctl"), "-D", str(self.info.data_dir), "-l", str(self.info.log_file), *options,
                "-w", "-t", "60", "start"], self.account)
        if port:
            self.info.port = port

    def running(self) -> bool:
        if not self.initialised():
            return False
        status = run_as([self._bin("pg_ctl"), "-D", str(self.info.data_dir), "status"], self.account, check=False)
        return status.returncode == 0

    def stop(self) -> None:
        if self.initialised():
            run_as([self._bin("pg_ctl"), "-D", str(self.info.data_dir), "-m", "fast", "-w", "stop"],
                   self.account, check=False)

    # steps ---------------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return str(Path(self.info.bindir) / name)

    def _prepare_directory(self) -> None:
        base = Path(self.info.base)
        base.mkdir(parents=True, exist_ok=True)
        for directory in {base, Path(self.info.socket_dir)}:
            if self.account is not None:
                os.chown(directory, self.account.pw_uid, self.account.pw_gid)
        if self.account is not None and not reachable_by(self.account, base):
            raise PostgresUnavailable(
                f"PostgreSQL runs as {self.account.pw_name!r} (not as root) and cannot write to {base}; "
                "choose a directory that account can reach, e.g. --dir /tmp/noetl-demo-postgres"
            )

    def _initdb(self) -> None:
        run_as([self._bin("initdb"), "-D", str(self.info.data_dir), "-U", self.info.superuser,
                "-A", "trust", "-E", "UTF8", "--no-sync"], self.account)
        _write_config(self.info)

    def _create_role_and_database(self) -> None:
        import psycopg
        from psycopg import sql

        info = self.info
        with psycopg.connect(host=info.socket_dir, port=info.port, user=info.superuser, dbname="postgres",
                             autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(info.user), sql.Literal(info.password)))
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(info.database), sql.Identifier(info.user)))


def _socket_dir(base: Path, account: pwd.struct_passwd | None) -> Path:
    """The cluster directory itself, unless its path is too long for a unix socket."""
    if len(str(base)) <= _MAX_SOCKET_DIR:
        return base
    short = Path(tempfile.mkdtemp(prefix="noetl-pgsock-"))
    if account is not None:
        os.chown(short, account.pw_uid, account.pw_gid)
    return short


def _write_config(info: ClusterInfo) -> None:
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(info.port),
        "unix_socket_directories": f"'{info.socket_dir}'",
        "fsync": "on" if info.durable else "off",
        "synchronous_commit": "on" if info.durable else "off",
        "full_page_writes": "on" if info.durable else "off",
        "max_connections": "100",
        "shared_buffers": "32MB",
        "password_encryption": "'scram-sha-256'",
    }
    with (info.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# noetl local cluster\n")
        for key, value in settings.items():
            conf.write(f"{key} = {value}\n")
    # The superuser only over the socket (no password); everyone else over TCP with a password.
    (info.data_dir / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8"
    )


# --------------------------------------------------------------------------------------------
# `noetl demo postgres`: one long-lived cluster in a directory
# --------------------------------------------------------------------------------------------


def default_demo_dir() -> Path:
    """``$NOETL_HOME/demo-postgres``; as root, ``/tmp/noetl-demo-postgres``.

    As root the server runs as another account, and NOETL_HOME is no place for its files: every
    NoETL command that opens the local store makes NOETL_HOME owner-only (fileperms), after which
    that account can no longer reach its data directory and PostgreSQL stops at its next checkpoint.
    A cluster an older version already created under NOETL_HOME is still found there (to stop it).
    """
    from noetl.settings import load_settings

    preferred = load_settings().home / "demo-postgres"
    if server_account() is None or _state_path(preferred).exists():
        return preferred
    return Path(tempfile.gettempdir()) / "noetl-demo-postgres"


def _state_path(base: Path) -> Path:
    return base / STATE_FILE


def _save_state(info: ClusterInfo) -> None:
    path = _state_path(Path(info.base))
    path.write_text(json.dumps(asdict(info), indent=2), encoding="utf-8")
    path.chmod(0o600)


def load_demo_cluster(base: Path) -> LocalCluster | None:
    """The demo cluster recorded in ``base``, or None when there is none."""
    path = _state_path(base)
    if not path.exists():
        return None
    return LocalCluster(ClusterInfo(**json.loads(path.read_text(encoding="utf-8"))))


def start_demo_postgres(base: Path, port: int | None = None) -> tuple[ClusterInfo, str]:
    """Create or restart the demo cluster in ``base``; returns its info and what happened
    (``created``, ``started`` or ``already running``)."""
    base = base.expanduser().resolve()
    cluster = load_demo_cluster(base)
    if cluster is not None and cluster.initialised():
        if cluster.running():
            return cluster.info, "already running"
        wanted = port or cluster.info.port
        _check_port_free(wanted)
        cluster.start(port=wanted if wanted != cluster.info.port else None)
        _save_state(cluster.info)
        return cluster.info, "started"
    if base.exists() and any(base.iterdir()) and not _state_path(base).exists():
        raise PostgresUnavailable(f"{base} exists and is not a demo PostgreSQL directory; choose another --dir")
    wanted = port or DEMO_PORT
    _check_port_free(wanted)
    cluster = LocalCluster.new(base, port=wanted, user=DEMO_USER, password=DEMO_PASSWORD, database=DEMO_DATABASE)
    try:
        cluster.create()
    except BaseException:
        _discard(cluster)
        raise
    _save_state(cluster.info)
    return cluster.info, "created"


def _discard(cluster: LocalCluster) -> None:
    """Undo a half-made cluster so that the next attempt starts clean."""
    with contextlib.suppress(Exception):
        cluster.stop()
    shutil.rmtree(cluster.info.data_dir, ignore_errors=True)
    cluster.info.log_file.unlink(missing_ok=True)


def stop_demo_postgres(base: Path) -> bool:
    """Stop the demo cluster in ``base``; False when none was running."""
    cluster = load_demo_cluster(base.expanduser().resolve())
    if cluster is None or not cluster.running():
        return False
    cluster.stop()
    return True


def _check_port_free(port: int) -> None:
    if port_in_use(port):
        raise PostgresUnavailable(f"port {port} on 127.0.0.1 is in use; choose another with --port")
