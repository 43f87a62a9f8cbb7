"""``POST /api/postgres/execute`` and the direct ``noetl query``: one SQL statement, on a fresh
connection, in a read-only transaction unless writes were allowed.

Why each rule (SPEC section 20):

- **One statement.** ``COMMIT; DELETE ...`` or ``SET TRANSACTION READ WRITE; ...`` would end or
  undo the read-only transaction; a single statement cannot.
- **Only reading statements** (``SELECT``, ``WITH``, ``VALUES``, ``TABLE``, ``SHOW``, ``EXPLAIN``)
  when read-only; anything else is refused (403) before it reaches PostgreSQL.
- **A fresh connection, closed afterwards.** ``SET``, ``search_path``, advisory locks and
  ``LISTEN`` die with it instead of haunting the server's pool.
- **The reader role** (:mod:`noetl.store.postgres.sqlreader`): the server's own queries run as the
  role that owns NoETL's tables (often a superuser); the endpoint's never do.
- **A bounded answer.** Rows are streamed from PostgreSQL (libpq would otherwise hold the whole
  result in memory before the first row is seen) and the answer stops at ``MAX_QUERY_ROWS`` rows or
  ``MAX_QUERY_BYTES`` of JSON, with ``truncated: true``: ``SELECT generate_series(1, 1e9)`` is a
  statement of a few seconds that would have taken the server's memory. A row is received whole
  (libpq has no partial rows), so a reading query's rows are measured in PostgreSQL first
  (:func:`measured`): a row whose text exceeds ``MAX_QUERY_BYTES`` would not fit the answer
  anyway, and arrives as NULLs that end it, never as the 500 MB of ``SELECT repeat('x', 5e8)``.
  An EXPLAIN's lines are measured in PostgreSQL as well (:func:`_measured_plan`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import sql

from noetl.errors import ForbiddenError, InputError, StoreError
from noetl.limits import MAX_QUERY_BYTES, MAX_QUERY_ROWS, QUERY_TIMEOUT_SECONDS
from noetl.tools._sql import split_sql_statements

READING_STATEMENTS = ("select", "with", "values", "table", "show", "explain")
MEASURED_STATEMENTS = ("select", "with", "values", "table")  # those PostgreSQL takes as a subquery
STATEMENT_TIMEOUT_MS = QUERY_TIMEOUT_SECONDS * 1000


class SqlRefused(ForbiddenError):
    """A statement the endpoint does not run (HTTP 403)."""

    http_status = 403


def single_statement(query: str) -> str:
    statements = split_sql_statements(query.lstrip(_BYTE_ORDER_MARK))
    if not statements:
        raise InputError("query: an SQL statement is required")
    if len(statements) > 1:
        raise InputError(f"query: one statement per request ({len(statements)} given)")
    return statements[0]


def check_reading(statement: str) -> None:
    first = first_word(statement)
    if first not in READING_STATEMENTS:
        raise SqlRefused(f"read-only: {visible(first.upper()) or 'this'} statements are not allowed "
                         f"(only {', '.join(w.upper() for w in READING_STATEMENTS)}); to change data use "
                         "`noetl query --write` (a server also needs NOETL_SQL_API_WRITE=true)")


def first_word(statement: str) -> str:
    words = _without_leading_comments(statement).lstrip("( \t\r\n").split(None, 1)
    return words[0].lower() if words else ""


_BYTE_ORDER_MARK = "\ufeff"  # what an editor writes at the start of a file; no part of the statement


def visible(text: str) -> str:
    """``text`` with each character that does not show (U+200B, a control character) named instead:
    an error that echoes it would read as if the statement had said nothing odd."""
    return "".join(char if char.isprintable() else f"<U+{ord(char):04X}>" for char in text)


def _without_leading_comments(statement: str) -> str:
    """The statement from its first word on: ``-- ...`` lines and ``/* ... */`` blocks before it are
    skipped as PostgreSQL skips them (block comments nest there, so they are counted here too)."""
    text = statement.lstrip()
    while text.startswith(("--", "/*")):
        if text.startswith("--"):
            text = text.partition("\n")[2].lstrip()
            continue
        depth, at = 0, 0
        while at < len(text):
            if text.startswith("/*", at):
                depth, at = depth + 1, at + 2
            elif text.startswith("*/", at):
                depth, at = depth - 1, at + 2
                if depth == 0:
                    break
            else:
                at += 1
        text = text[at:].lstrip() if depth == 0 else ""
    return text


async def run_statement(conninfo: str, query: str, params: Any = None, *, schema: str | None = None,
                        write: bool = False, callers: bool = False) -> dict[str, Any]:
    """Run one statement on its own connection and close it. ``callers``: ``conninfo`` is the
    caller's (a connection string, a credential), so a login it cannot make is the caller's error (400)."""
    statement = single_statement(query)
    if not write:
        check_reading(statement)
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=10)
    except psycopg.Error as exc:
        if callers:
            raise InputError(f"cannot connect to that database: {_first_line(exc)}") from None
        raise StoreError(f"cannot connect for the SQL query: {_first_line(exc)}") from None
    try:
        await conn.set_read_only(not write)
        async with conn.transaction(force_rollback=not write):
            await conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            if schema:
                await conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema)))
            if not write and first_word(statement) in MEASURED_STATEMENTS:
                return await _measured_rows(conn, statement, params)
            if not write and first_word(statement) == "explain":
                return await _measured_plan(conn, statement, params)
            return await _bounded_rows(conn.cursor(), statement, params, complete=write)
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise SqlRefused(f"read-only: {_first_line(exc)}") from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SqlRefused(f"not allowed: {_first_line(exc)}") from None
    except psycopg.errors.QueryCanceled:  # the statement's own cost, not a failing store: retrying will not help
        raise InputError(f"the statement was stopped after {STATEMENT_TIMEOUT_MS / 1000:g} s, the SQL endpoint's "
                         "limit; narrow it (WHERE, LIMIT)") from None
    except (psycopg.errors.OperationalError, psycopg.errors.InterfaceError) as exc:
        raise StoreError(f"running SQL failed: {_first_line(exc)}") from None
    except psycopg.Error as exc:
        raise InputError(f"SQL error: {_first_line(exc)}") from None
    finally:
        await conn.close()


async def _measured_rows(conn: psycopg.AsyncConnection[Any], statement: str, params: Any) -> dict[str, Any]:
    """A reading statement's bounded answer, each row measured in PostgreSQL before it is sent. A
    statement PostgreSQL does not take as a subquery (a data-modifying ``WITH``) runs as written,
    for its own error: the read-only transaction refuses what it would write."""
    probe = conn.cursor()
    try:
        async with conn.transaction():  # a savepoint: a probe that fails leaves the transaction usable
            await probe.execute(f"SELECT * FROM (\n{statement}\n) AS q LIMIT 0".encode(), params or None)
    except (psycopg.errors.QueryCanceled, psycopg.errors.OperationalError, psycopg.errors.InterfaceError):
        raise
    except psycopg.Error:
        return await _bounded_rows(conn.cursor(), statement, params, complete=False)
    names = [column.name for column in probe.description or ()]
    if not names:
        return await _bounded_rows(conn.cursor(), statement, params, complete=False)
    answer = await _bounded_rows(conn.cursor(), measured(statement, len(names)), params, complete=False,
                                 measured=True)
    return {**answer, "columns": names}


def measured(statement: str, columns: int) -> str:
    """``statement`` (of ``columns`` columns) with each row's text measured in PostgreSQL: a row over
    ``MAX_QUERY_BYTES`` is sent as NULLs with its last column, ``over``, true. Columns are renamed
    by position (a statement may name two alike); ``OFFSET 0`` keeps each value computed once."""
    names = [f"c{index}" for index in range(columns)]
    size = " + ".join(f"coalesce(octet_length(q.{name}::text), 0)::bigint" for name in names)
    values = ", ".join(f"CASE WHEN NOT over THEN {name} END" for name in names)
    return (f"SELECT {values}, over FROM (SELECT q.*, ({size}) > {MAX_QUERY_BYTES} AS over "
            f"FROM (\n{statement}\n) AS q({', '.join(names)}) OFFSET 0) AS measured")


# The plan's lines gathered in PostgreSQL up to the bounds, and handed over as one value. Fixed text:
# the statement comes in through a setting, never into the block's source.
_MEASURED_PLAN = f"""DO $measure$
DECLARE
  line record; piece json; plan json[] := '{{}}'; size bigint := 0; names json; cut boolean := false;
BEGIN
  FOR line IN EXECUTE current_setting('noetl.sql_statement') LOOP
    piece := to_json(line);
    names := coalesce(names, (SELECT json_agg(name) FROM json_object_keys(piece) AS name));
    size := size + octet_length(piece::text);
    IF size > {MAX_QUERY_BYTES} OR cardinality(plan) >= {MAX_QUERY_ROWS} THEN cut := true; EXIT; END IF;
    plan := plan || piece;
  END LOOP;
  PERFORM set_config('noetl.sql_answer',
                     json_build_object('columns', names, 'rows', array_to_json(plan), 'truncated', cut)::text, true);
END
$measure$"""


async def _measured_plan(conn: psycopg.AsyncConnection[Any], statement: str, params: Any) -> dict[str, Any]:
    """An EXPLAIN's answer, measured in PostgreSQL. EXPLAIN is no subquery, and its lines are not
    bounded by the statement's size: the planner folds ``repeat('x', 300000000)`` into a constant
    that the plan prints, a 300 MB line the server would receive whole. A PL/pgSQL block runs it
    (as the same role, in the same read-only transaction) and keeps the lines that fit."""
    text = psycopg.AsyncClientCursor(conn).mogrify(statement, params) if params else statement
    await conn.execute("SELECT set_config('noetl.sql_statement', %s, true)", (text,))
    await conn.execute(_MEASURED_PLAN)
    cursor = await conn.execute("SELECT current_setting('noetl.sql_answer')")
    measured = json.loads(str((await cursor.fetchone() or ["{}"])[0]))
    rows = [list(line.values()) for line in measured["rows"]]
    answer = {"columns": measured["columns"] or [], "rows": rows, "rowcount": len(rows)}
    return {**answer, "truncated": True} if measured["truncated"] else answer


async def _bounded_rows(cursor: psycopg.AsyncCursor[Any], statement: str, params: Any, *,
                        complete: bool, measured: bool = False) -> dict[str, Any]:
    """The statement's answer, at most MAX_QUERY_ROWS rows and MAX_QUERY_BYTES of JSON (``truncated``).
    A reading statement stops there; a writing one (``complete``) runs to its end, its further rows
    dropped, so that what it changes is committed whole. ``measured``: the statement is one of
    :func:`measured`, whose last column says a row was too big to send."""
    rows: list[Any] = []
    size, truncated = 0, False
    async for row in cursor.stream(statement.encode("utf-8"), params or None):
        if truncated:
            continue
        if measured:
            if row[-1]:
                truncated = True
                break
            row = row[:-1]
        encoded = json.dumps(list(row), default=_default)
        size += len(encoded)
        if len(rows) >= MAX_QUERY_ROWS or size > MAX_QUERY_BYTES:
            truncated = True
            if not complete:
                break  # psycopg cancels the rest of the statement
            continue
        rows.append(json.loads(encoded))
    if cursor.description is None:
        return {"columns": [], "rows": [], "rowcount": cursor.rowcount}
    answer = {"columns": [column.name for column in cursor.description], "rows": rows, "rowcount": len(rows)}
    return {**answer, "truncated": True} if truncated else answer


# What a caller's connection string may say: where to connect, as whom, and how the session behaves.
# Not files on the server's host (passfile, service, sslkey ...): those are the server's own secrets.
_CALLER_FIELDS = frozenset({"host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "options",
                            "application_name", "connect_timeout", "target_session_attrs"})
_CREDENTIAL_FILES = frozenset({"sslrootcert", "sslcert", "sslkey"})  # a registered credential names its own
_NO_FILE = os.path.join(os.devnull, "none")  # libpq skips a client certificate it cannot find
# libpq 16 and later: no Kerberos/SSPI login with the server's tickets either.
_NO_SERVER_TICKETS = {"require_auth": "!gss,!sspi"} if psycopg.pq.version() >= 160000 else {}


def caller_conninfo(conninfo: str, *, where: str = "connection_string", credential: bool = False) -> str:
    """``conninfo`` (a request's ``connection_string``, or a registered ``credential``'s) made to log in
    with what it says alone. libpq would otherwise fill in what it leaves out from the server's own
    host: PGPASSWORD, PGUSER and ~/.pgpass, the client certificate in ~/.postgresql, and over a unix
    socket the server's OS account (peer authentication): the database's owner, often a superuser."""
    try:
        fields = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise InputError(f"{where}: {_first_line(exc)}") from None
    refused = set(fields) - _CALLER_FIELDS - (_CREDENTIAL_FILES if credential else set())
    if refused:
        raise InputError(f"{where}: {', '.join(sorted(refused))} not accepted by the SQL endpoint "
                         "(it names the server's own files)")
    hosts = str(fields.get("hostaddr") or fields.get("host") or "")
    if not hosts or any(not host or host.startswith(("/", "@")) for host in hosts.split(",")):
        raise InputError(f"{where}: a TCP host is required (over a unix socket the database "
                         "would see the server's own OS account)")
    if not fields.get("user"):
        raise InputError(f"{where}: a user is required (else the server's own would be used)")
    files = {name: fields.get(name) or _NO_FILE for name in ("sslcert", "sslkey")}
    return pg_conninfo.make_conninfo("", **{**fields, "password": fields.get("password") or "", "passfile": _NO_FILE,
                                        **files, **_NO_SERVER_TICKETS})


async def reader_conninfo(store: Any, database_url: str) -> str:
    """Where a read-only request runs: as the reader role, or, where ``noetl db init`` could not
    create it, as the server's role when that role holds no rights beyond its own tables."""
    from noetl.store.postgres.sqlreader import find_reader, server_role_is_privileged

    async with store.connection() as conn:
        reader = await find_reader(conn)
        if reader is not None:
            return reader.conninfo(database_url)
        if await server_role_is_privileged(conn):
            raise SqlRefused("the SQL endpoint has no reader role and the server's role is privileged: "
                             "run `noetl db init` as a role with CREATEROLE to create it")
    return database_url


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)
