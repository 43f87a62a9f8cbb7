"""A PostgreSQL ``transfer`` target: COPY in chunks inside one transaction.

:class:`TargetTable` knows the table (its columns and their types, read once) and writes the SQL:
each chunk of ``chunk_size`` rows is one ``COPY ... FROM STDIN``; ``upsert`` copies a chunk into a
temporary staging table and merges it with ``INSERT ... ON CONFLICT (key) DO UPDATE`` (the last
row of a key wins); ``replace`` empties the table first. Everything commits together at the end,
or not at all. Two drivers use it:

- :func:`write_chunks` (async): rows arrive as mappings from any source, are cast to the column
  types in Python (:mod:`noetl.tools._sqlcast`) and written with ``write_row``;
- :func:`copy_pipe` (in a thread, from a PostgreSQL source): ``COPY (SELECT <fields cast to the
  column types> FROM (<query>) q) TO STDOUT`` streamed into the target's COPY, no row decoded in
  Python. The driver hands COPY data over a row at a time, which costs a synchronous loop half
  what it costs an asynchronous one, so the pipe runs on plain connections in a worker thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import sql

from noetl.errors import ToolError
from noetl.secrets import Redactor
from noetl.tools import postgres as postgres_tool
from noetl.tools._sqlcast import Cast, cast_rows, caster
from noetl.tools.sink import _check_columns, _key_columns, _no_table

STAGING = sql.Identifier("noetl_transfer_staging")
WRITE_BYTES = 1 << 20  # COPY data gathered into writes of about this size
# Types every PostgreSQL has (OIDs below FirstNormalObjectId): a source can cast to them by name.
_FIRST_USER_OID = 16384
DESCRIBE = ("SELECT c.oid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod), t.typname, "
            "t.typcategory, t.oid < %(user_oid)s "
            "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE c.oid = to_regclass(%(table)s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")


class TargetTable:
    """The target table of one transfer: its columns, and the statements that fill it."""

    def __init__(self, target: dict[str, Any], redactor: Redactor) -> None:
        self.table = str(target["table"])
        self.mode = str(target.get("mode") or "insert")
        self.keys = _key_columns(target)
        self.redactor = redactor
        self.quoted = sql.SQL("")
        self.types: dict[str, tuple[str, str, bool]] = {}  # column -> (format_type, category, built-in)
        self.columns: list[str] = []

    def describe(self) -> tuple[str, dict[str, Any]]:
        return DESCRIBE, {"table": self.table, "user_oid": _FIRST_USER_OID}

    def described(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            raise _no_table(self.table)
        self.quoted = sql.SQL(rows[0][0])
        for _, name, type_sql, type_name, category, builtin in rows:
            self.types[name] = (type_sql, "json" if type_name in ("json", "jsonb") else category, bool(builtin))

    def plan(self, mapping: dict[str, str]) -> list[tuple[str, str, Cast]]:
        """``(target column, source field, cast)`` for every mapped column (checked to exist)."""
        _check_columns(self.table, list(mapping), self.types)
        missing = [k for k in self.keys if k not in mapping] if self.mode == "upsert" else []
        if missing:
            raise ToolError(f"transfer upsert key column(s) {missing} are not in the mapping", kind="config")
        self.columns = list(mapping)
        return [(column, field, caster(*self.types[column][:2])) for column, field in mapping.items()]

    def cast_select(self, mapping: dict[str, str], query: str) -> sql.Composed:
        """``SELECT CAST(q.field AS type) AS column, ... FROM (query) q``: the source casts each value
        to its target column's type (built-in types; any other goes as text, parsed by the target)."""
        self.plan(mapping)
        items = []
        for column, field in mapping.items():
            type_sql, _, builtin = self.types[column]
            value: sql.Composable = sql.SQL("q.{}").format(sql.Identifier(field))
            if builtin:
                value = sql.SQL("CAST({} AS {})").format(value, sql.SQL(type_sql))
            items.append(sql.SQL("{} AS {}").format(value, sql.Identifier(column)))
        return sql.SQL("SELECT {} FROM ({}) AS q").format(sql.SQL(", ").join(items), sql.SQL(query))

    def before(self) -> list[sql.Composed]:
        """What runs before the first chunk: emptying the table, creating the staging table."""
        statements = []
        if self.mode == "replace":
            statements.append(sql.SQL("TRUNCATE {}").format(self.quoted))
        if self.mode == "upsert":
            statements.append(sql.SQL("DROP TABLE IF EXISTS {}").format(STAGING))
            statements.append(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                STAGING, self._column_list(), self.quoted))
        return statements

    def copy_statement(self) -> sql.Composed:
        into = STAGING if self.mode == "upsert" else self.quoted
        return sql.SQL("COPY {} ({}) FROM STDIN").format(into, self._column_list())

    def merge(self) -> list[sql.Composed]:
        """After an upsert chunk's COPY: merge the staging table (its row count is the rows written)
        and empty it."""
        if self.mode != "upsert":
            return []
        keys = sql.SQL(", ").join(map(sql.Identifier, self.keys))
        updates = [c for c in self.columns if c not in self.keys]
        action = sql.SQL("DO UPDATE SET {}").format(sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates)) if updates \
            else sql.SQL("DO NOTHING")
        columns = self._column_list()
        return [sql.SQL("INSERT INTO {} ({}) SELECT DISTINCT ON ({}) {} FROM {} ORDER BY {}, ctid DESC "
                        "ON CONFLICT ({}) {}").format(self.quoted, columns, keys, columns, STAGING, keys, keys, action),
                sql.SQL("TRUNCATE {}").format(STAGING)]

    def _column_list(self) -> sql.Composed:
        return sql.SQL(", ").join(map(sql.Identifier, self.columns))

    def error(self, exc: psycopg.Error) -> ToolError:
        message = postgres_tool.clean_message(str(exc).strip(), self.redactor)
        retryable = isinstance(exc, psycopg.OperationalError) or getattr(exc, "sqlstate", None) in ("40001", "40P01")
        return ToolError(f"transfer into {self.table!r} failed: {message}", kind="transfer", retryable=retryable)


# --------------------------------------------------------------------------------------------
# Rows as mappings, from any source (async)
# --------------------------------------------------------------------------------------------


async def write_chunks(table: TargetTable, conninfo: str, chunks: AsyncIterator[list[dict[str, Any]]],
                       mapping_for: Any) -> tuple[int, int, int]:
    """Write every chunk; ``mapping_for(rows)`` gives the mapping from the first chunk. Returns
    (rows read, rows written, chunks)."""
    read = written = count = 0
    try:
        async with postgres_tool.pooled_connection(conninfo, table.redactor) as connection, \
                connection.transaction():
            query, params = table.describe()
            table.described(await (await connection.execute(query, params)).fetchall())
            plan = None
            if table.mode == "replace":
                await connection.execute(table.before()[0])
            async for rows in chunks:
                if plan is None:
                    plan = table.plan(mapping_for(rows))
                    for statement in table.before()[1 if table.mode == "replace" else 0:]:
                        await connection.execute(statement)
                values = cast_rows(rows, plan, read)
                async with connection.cursor() as cursor:
                    async with cursor.copy(table.copy_statement()) as copy:
                        for row in values:
                            await copy.write_row(row)
                    written += await _merge_async(cursor, table, len(values))
                read += len(rows)
                count += 1
    except psycopg.Error as exc:
        raise table.error(exc) from None
    return read, written, count


async def _merge_async(cursor: psycopg.AsyncCursor[Any], table: TargetTable, rows: int) -> int:
    statements = table.merge()
    if not statements:
        return rows
    await cursor.execute(statements[0])
    written = max(cursor.rowcount, 0)
    await cursor.execute(statements[1])
    return written


# --------------------------------------------------------------------------------------------
# PostgreSQL to PostgreSQL: a COPY pipe (in a thread)
# --------------------------------------------------------------------------------------------


def copy_pipe(table: TargetTable, *, source_conninfo: str, target_conninfo: str, query: str, params: Any,
              mapping: dict[str, str] | None, chunk_size: int) -> tuple[int, int, int]:
    """Stream ``query``'s rows into the table; returns (rows read, rows written, chunks)."""
    where = "target"
    fields: dict[str, str] | None = None
    try:
        with psycopg.connect(target_conninfo) as target, target.transaction():
            describe, describe_params = table.describe()
            table.described(target.execute(describe, describe_params).fetchall())
            where = "source"
            with psycopg.connect(source_conninfo) as source, source.cursor() as out_cursor:
                fields = mapping or _query_fields(source, query, params)
                select = table.cast_select(fields, query)
                for statement in table.before():
                    target.execute(statement)
                chunks = _ChunkedCopy(target, table, chunk_size)
                try:
                    with out_cursor.copy(sql.SQL("COPY ({}) TO STDOUT").format(select), params) as out:
                        for block in out:
                            chunks.write(block)
                    chunks.close()
                except BaseException as exc:
                    chunks.abort(exc)
                    raise
                return chunks.read, chunks.written, chunks.count
    except psycopg.Error as exc:
        if where == "source":
            if fields is not None and _is_cast_error(exc):
                # The user's query can fail by itself on a data error, and again when read back:
                # then PostgreSQL's message (redacted, below) is the step's error.
                with contextlib.suppress(psycopg.Error):
                    _raise_uncastable_row(table, source_conninfo, query, params, fields, chunk_size)
            raise postgres_tool.sql_error(exc, 0, 1, query, table.redactor) from None
        raise table.error(exc) from None


def _is_cast_error(exc: psycopg.Error) -> bool:
    """A value the pipe's ``CAST`` refused: data exceptions (class 22) and cannot_coerce (42846)."""
    state = getattr(exc, "sqlstate", None) or ""
    return state.startswith("22") or state == "42846"


def _raise_uncastable_row(table: TargetTable, conninfo: str, query: str, params: Any, fields: dict[str, str],
                          chunk_size: int) -> None:
    """Raise the ``data`` error of the first source row a column cannot take, naming the row and the
    column as the other sources do (PostgreSQL's own message names neither). Reads the source again
    as mappings, only after the pipe failed; returns when every row casts (then PostgreSQL's message
    is all there is)."""
    from psycopg.rows import dict_row

    plan = table.plan(fields)
    with psycopg.connect(conninfo) as connection, \
            connection.cursor(name="noetl_transfer_cast_check", row_factory=dict_row) as cursor:
        cursor.execute(sql.SQL(query), params)  # type: ignore[arg-type]  # the user's query, as the pipe ran it
        offset = 0
        while rows := cursor.fetchmany(chunk_size):
            cast_rows(rows, plan, offset)  # raises the row's error, as write_chunks does
            offset += len(rows)


def _query_fields(connection: psycopg.Connection[Any], query: str, params: Any) -> dict[str, str]:
    """Every column of the source query, to the target column of the same name (``LIMIT 0``)."""
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(sql.SQL(query)), params)
        return {c.name: c.name for c in cursor.description or []}


class _ChunkedCopy:
    """Write COPY text into the target, ``chunk_size`` rows per ``COPY ... FROM STDIN``.

    In COPY's text format a newline byte only ever ends a row (newlines inside values are escaped
    as ``\\n``), so counting newlines counts rows and a chunk can end at any of them. The source
    hands over about one row per block; they are gathered into writes of ``WRITE_BYTES``, sent while
    the source goes on reading, so both servers work at once and memory stays at one write.
    """

    def __init__(self, connection: psycopg.Connection[Any], table: TargetTable, chunk_size: int) -> None:
        self.connection = connection
        self.table = table
        self.chunk_size = chunk_size
        self.read = self.written = self.count = 0
        self._in_chunk = 0
        self._buffer = bytearray()
        self._cursor: psycopg.Cursor[Any] | None = None
        self._copy_cm: Any = None  # the cursor's copy() context, while a chunk's COPY is open
        self._copy: Any = None

    def write(self, block: Any) -> None:
        block = bytes(block)
        while block:
            rows = block.count(b"\n")
            room = self.chunk_size - self._in_chunk
            if rows < room:
                self._buffer += block
                self._in_chunk += rows
                if len(self._buffer) >= WRITE_BYTES:
                    self._guarded(self._flush)
                return
            end = _nth_newline(block, room) + 1
            self._buffer += block[:end]
            self._in_chunk += room
            block = block[end:]
            self._guarded(self._finish)

    def close(self) -> None:
        if self._in_chunk:
            self._guarded(self._finish)

    def abort(self, exc: BaseException) -> None:
        """End an open chunk's COPY after a failure, so that the transaction can roll back."""
        if self._copy_cm is not None:
            copy_cm, self._copy, self._copy_cm = self._copy_cm, None, None
            with contextlib.suppress(psycopg.Error):  # the error to report is the one that got us here
                copy_cm.__exit__(type(exc), exc, exc.__traceback__)

    def _guarded(self, step: Any) -> None:
        try:
            step()
        except psycopg.Error as exc:
            raise self.table.error(exc) from None

    def _flush(self) -> None:
        if self._copy is None:
            self._cursor = self.connection.cursor()
            self._copy_cm = self._cursor.copy(self.table.copy_statement())
            self._copy = self._copy_cm.__enter__()
        self._copy.write(self._buffer)
        self._buffer.clear()

    def _finish(self) -> None:
        self._flush()
        copy_cm, cursor = self._copy_cm, self._cursor
        self._copy = self._copy_cm = self._cursor = None
        copy_cm.__exit__(None, None, None)
        assert cursor is not None
        with cursor:
            statements = self.table.merge()
            if statements:
                cursor.execute(statements[0])
                self.written += max(cursor.rowcount, 0)
                cursor.execute(statements[1])
            else:
                self.written += self._in_chunk
        self.read += self._in_chunk
        self.count += 1
        self._in_chunk = 0


def _nth_newline(block: bytes, n: int) -> int:
    position = -1
    for _ in range(n):
        position = block.index(b"\n", position + 1)
    return position
