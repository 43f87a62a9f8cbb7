"""``postgres``: run SQL on PostgreSQL with psycopg 3.

Config: ``auth`` (credential name, or v1 ``{type: postgres, credential: name}``) or
``connection`` (URL or libpq conninfo); ``command`` / ``query`` / ``sql`` (one or several
statements), ``command_b64``, or ``script``; ``params`` (a mapping for ``%(name)s`` placeholders or a
list for ``%s``), always bound by the driver, never pasted into the SQL.

Statements run one by one on one connection in autocommit mode, as psql runs a file: each
statement is committed when it succeeds; wrap them in ``BEGIN; ... COMMIT;`` for all-or-nothing.

Result: ``{status, rows, row_count, columns, statement_count, command_0, ...}``; the top-level
``rows``/``row_count``/``columns`` mirror the last statement.

Connections come from one ``AsyncConnectionPool`` per connection target and event loop; call
:func:`close_postgres_pools` at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from noetl.errors import ToolError
from noetl.results.encoded import EncodedList
from noetl.secrets import Redactor, redact_connection_secrets
from noetl.tools._auth import remember_secrets, resolve_auth
from noetl.tools._sql import (
    build_sql_result,
    load_statements,
    preview,
    statement_result,
    statement_where,
    uses_numbered_parameters,
)
from noetl.tools._sqlconv import rows_to_dicts
from noetl.tools.base import ToolCall

POOL_MAX_SIZE = 10
POOL_ACQUIRE_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 10

# Credential field -> libpq keyword; the first alias present wins.
_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "host": ("host", "db_host", "hostname", "server"),
    "port": ("port", "db_port"),
    "user": ("user", "db_user", "username"),
    "password": ("password", "db_password"),
    "dbname": ("database", "db_name", "dbname", "db"),
}
_PASSTHROUGH_KEYWORDS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "options",
    "application_name",
    "connect_timeout",
)
_URL_KEYS = ("dsn", "url", "connection", "connection_string", "conninfo", "database_url")
_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s")

# SQLSTATEs that say "the connection is gone, try again" vs "this transaction lost a race".
_CONNECTION_STATES = ("08", "57P01", "57P02", "57P03")
_RETRYABLE_SQL_STATES = ("40001", "40P01")
_QUERY_CANCELED = "57014"

# (id(loop), conninfo) -> (loop, pool)
_pools: dict[tuple[int, str], tuple[asyncio.AbstractEventLoop, AsyncConnectionPool]] = {}
_pool_locks: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}


# --------------------------------------------------------------------------------------------
# Where to connect
# --------------------------------------------------------------------------------------------


def conninfo_from_fields(data: dict[str, Any]) -> str:
    """A libpq conninfo from credential fields (host|db_host, user|db_user|username, ...)."""
    for key in _URL_KEYS:
        if isinstance(data.get(key), str) and data[key]:
            return str(data[key])
    params: dict[str, Any] = {}
    for keyword, aliases in _FIELD_ALIASES.items():
        for alias in aliases:
            if data.get(alias) not in (None, ""):
                params[keyword] = str(data[alias])
                break
    for keyword in _PASSTHROUGH_KEYWORDS:
        if data.get(keyword) not in (None, ""):
            params[keyword] = str(data[keyword])
    if "host" not in params and "dbname" not in params:
        raise ToolError("postgres credential needs at least `host` and `database`", kind="config")
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_SECONDS))
    return pg_conninfo.make_conninfo(**params)


async def resolve_conninfo(config: dict[str, Any], call: ToolCall) -> str:
    """The conninfo for ``auth`` / ``connection`` (or v1 connection fields on the tool itself)."""
    connection = config.get("connection") or config.get("connection_string") or config.get("dsn")
    if connection:
        conninfo = str(connection)
    else:
        credential = await resolve_auth(config.get("auth"), call)
        if credential is not None:
            cred_type = str(credential.get("type") or "postgres").lower()
            if cred_type not in ("postgres", "postgresql", "generic", "pg"):
                raise ToolError(
                    f"credential {credential.get('name')!r} has type {cred_type!r}, not postgres",
                    kind="config",
                )
            conninfo = conninfo_from_fields(dict(credential.get("data") or {}))
        elif any(config.get(alias) for alias in ("db_host", "host")):
            conninfo = conninfo_from_fields(config)
        else:
            raise ToolError("postgres tool needs `auth` (a credential name) or `connection`", kind="config")
    _remember_conninfo_password(conninfo, call)
    return conninfo


def _remember_conninfo_password(conninfo: str, call: ToolCall) -> None:
    try:
        password = pg_conninfo.conninfo_to_dict(conninfo).get("password")
    except psycopg.ProgrammingError as exc:
        raise ToolError(
            f"invalid PostgreSQL connection string: {redact_connection_secrets(str(exc))}", kind="config"
        ) from None
    if password:
        remember_secrets(call, str(password))


def describe_target(conninfo: str) -> str:
    """``user@host:port/dbname`` for messages (never the password)."""
    try:
        parts = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "PostgreSQL"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or 5432
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"{user}{host}:{port}/{parts.get('dbname') or ''}"


def make_redactor(call: ToolCall) -> Redactor:
    return Redactor(call.secrets)


def clean_message(text: str, redactor: Redactor) -> str:
    """A driver message with connection strings and known secrets blanked."""
    return redactor.redact_text(redact_connection_secrets(text))


# --------------------------------------------------------------------------------------------
# Pools
# --------------------------------------------------------------------------------------------


def _lock_for(loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
    entry = _pool_locks.get(id(loop))
    if entry is None or entry[0] is not loop:
        entry = (loop, asyncio.Lock())
        _pool_locks[id(loop)] = entry
    return entry[1]


def _forget_pools_of_closed_loops() -> None:
    for key, (loop, _pool) in list(_pools.items()):
        if loop.is_closed():
            del _pools[key]
    for loop_id, (loop, _lock) in list(_pool_locks.items()):
        if loop.is_closed():
            del _pool_locks[loop_id]


# Driver exceptions are not chained (``from None``) on purpose: their text can echo a password
# or a secret literal, and a chained cause would print it, unredacted, in any traceback.


async def _probe(conninfo: str, redactor: Redactor) -> None:
    """Connect once so that a bad host or password fails with the driver's own reason."""
    try:
        connection = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise ToolError(
            f"cannot connect to {describe_target(conninfo)}: {clean_message(str(exc).strip(), redactor)}",
            kind="connection",
            retryable=True,
        ) from None
    await connection.close()


async def get_pool(conninfo: str, redactor: Redactor) -> AsyncConnectionPool:
    """The pool for ``conninfo`` on the running loop, created (after a probe) on first use."""
    loop = asyncio.get_running_loop()
    _forget_pools_of_closed_loops()
    key = (id(loop), conninfo)
    async with _lock_for(loop):
        entry = _pools.get(key)
        if entry is not None and entry[0] is loop and not entry[1].closed:
            return entry[1]
        await _probe(conninfo, redactor)
        pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=POOL_MAX_SIZE,
            kwargs={"autocommit": True},
            open=False,
            name=f"noetl-{describe_target(conninfo)}",
        )
        await pool.open(wait=False)
        _pools[key] = (loop, pool)
        return pool


async def close_postgres_pools() -> None:
    """Close the pools of the running event loop (call at shutdown and in tests)."""
    loop = asyncio.get_running_loop()
    _forget_pools_of_closed_loops()
    for key, (owner, pool) in list(_pools.items()):
        if owner is loop:
            del _pools[key]
            await pool.close()


@contextlib.asynccontextmanager
async def pooled_connection(conninfo: str, redactor: Redactor) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An autocommit connection from the pool; connection failures become ToolError(connection)."""
    pool = await get_pool(conninfo, redactor)
    try:
        async with pool.connection(timeout=POOL_ACQUIRE_TIMEOUT_SECONDS) as connection:
            yield connection
    except PoolTimeout as exc:
        raise ToolError(
            f"no PostgreSQL connection to {describe_target(conninfo)} available: {exc}",
            kind="connection",
            retryable=True,
        ) from None


# --------------------------------------------------------------------------------------------
# Running statements
# --------------------------------------------------------------------------------------------


_FETCH_BATCH_ROWS = 10_000
SPOOL_ROWS = 20_000  # rows of one statement kept as dicts; more are kept as their JSON


def _uses_placeholders(statement: str) -> bool:
    return bool(_PLACEHOLDER.search(statement))


async def _run_statement(
    connection: psycopg.AsyncConnection[Any], statement: str, params: dict[str, Any] | list[Any] | None
) -> dict[str, Any]:
    # `$1, $2` with a `params` list (NoETL playbooks bind base64 JSON so) go to PostgreSQL as its
    # own numbered parameters; `%s` / `%(name)s` are psycopg's. Without placeholders the statement
    # goes as is, so a literal % needs no escaping.
    numbered = isinstance(params, list) and not _uses_placeholders(statement) and uses_numbered_parameters(statement)
    async with (psycopg.AsyncRawCursor(connection) if numbered else connection.cursor()) as cursor:
        await cursor.execute(
            statement, params if params is not None and (numbered or _uses_placeholders(statement)) else None
        )
        if cursor.description is None:
            return statement_result([], [], max(cursor.rowcount, 0))
        columns = [column.name for column in cursor.description]
        rows: list[dict[str, Any]] | EncodedList = []
        spool = True
        # In batches: a million rows never exist as the driver's tuples and as dicts at once; past
        # SPOOL_ROWS each batch is kept as its JSON only, which is what the stored result holds.
        while batch := await cursor.fetchmany(_FETCH_BATCH_ROWS):
            rows, spool = _kept(rows, rows_to_dicts(columns, batch), spool)
            # The rows are in the driver's memory already: fetchmany never waits, so without this a
            # million rows held the event loop (heartbeats, other commands) for seconds.
            await asyncio.sleep(0)
        return statement_result(columns, rows, len(rows))  # type: ignore[arg-type]


def _kept(rows: list[dict[str, Any]] | EncodedList, batch: list[dict[str, Any]],
          spool: bool) -> tuple[list[dict[str, Any]] | EncodedList, bool]:
    """``rows`` with ``batch`` added: as dicts up to SPOOL_ROWS, then as JSON (results/encoded.py),
    and whether to go on keeping JSON."""
    if isinstance(rows, list) and (not spool or len(rows) + len(batch) <= SPOOL_ROWS):
        rows.extend(batch)
        return rows, spool
    try:
        if isinstance(rows, list):
            spooled = EncodedList()
            spooled.extend_encoded(rows)
            rows = spooled
        rows.extend_encoded(batch)
        return rows, True
    except TypeError:  # a value orjson cannot write (an integer past 64 bits): plain dicts after all
        return (rows.value() if isinstance(rows, EncodedList) else rows) + batch, False


def sql_error(exc: psycopg.Error, index: int, count: int, statement: str, redactor: Redactor) -> ToolError:
    """A driver error as ToolError: ``connection`` (retryable), ``timeout`` or ``sql``."""
    state = getattr(exc, "sqlstate", None) or ""
    message = clean_message(str(exc).strip(), redactor)
    details = {
        "statement_index": index,
        "sqlstate": state or None,
        "statement": clean_message(preview(statement), redactor),
    }
    where = statement_where(index, count)
    if isinstance(exc, psycopg.OperationalError) and (not state or state.startswith(_CONNECTION_STATES)):
        return ToolError(
            f"PostgreSQL connection lost{where}: {message}",
            kind="connection",
            retryable=True,
            details=details,
        )
    if state == _QUERY_CANCELED:
        return ToolError(
            f"statement cancelled{where}: {message}", kind="timeout", retryable=True, details=details
        )
    return ToolError(
        f"SQL error{where}: {message}",
        kind="sql",
        retryable=state in _RETRYABLE_SQL_STATES,
        details=details,
    )


async def _rollback_quietly(connection: psycopg.AsyncConnection[Any]) -> None:
    # A failure inside an explicit BEGIN leaves the session in an aborted transaction; reset it
    # before the connection goes back to the pool.
    with contextlib.suppress(psycopg.Error):
        await connection.rollback()
        if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await connection.execute("ROLLBACK")


async def execute_statements(
    connection: psycopg.AsyncConnection[Any],
    statements: list[str],
    params: dict[str, Any] | list[Any] | None,
    redactor: Redactor,
) -> list[dict[str, Any]]:
    results = []
    for index, statement in enumerate(statements):
        try:
            results.append(await _run_statement(connection, statement, params))
        except psycopg.Error as exc:
            await _rollback_quietly(connection)
            raise sql_error(exc, index, len(statements), statement, redactor) from None
    return results


async def run_postgres(config: dict[str, Any], call: ToolCall) -> dict[str, Any]:
    statements, params = await load_statements(config, call, "postgres")
    conninfo = await resolve_conninfo(config, call)
    redactor = make_redactor(call)
    async with pooled_connection(conninfo, redactor) as connection:
        results = await execute_statements(connection, statements, params, redactor)
    return build_sql_result(results)
