"""Sinks: write a result into a PostgreSQL or DuckDB table.

Config: ``tool`` (``postgres`` or ``duckdb``), ``table`` (``name`` or ``schema.name``), ``mode``
(``insert``, the default, or ``upsert``), ``key`` (a column or a list; required for upsert),
``columns`` (default: every key seen in the rows, in first-seen order), ``create`` (create the
table from the rows' value types when it is missing; default false: a missing table is an error),
and the connection of the matching tool (``auth`` / ``connection`` for postgres, ``database`` for
duckdb).

Data: a list of mappings, one mapping, or a tool result carrying ``rows`` (or an http result whose
``data`` is a list). Returns ``{status, table, rows_written}``.

PostgreSQL inserts stream through ``COPY``; upserts COPY into a temporary table and merge with
``INSERT ... ON CONFLICT (key) DO UPDATE``, all in one transaction. DuckDB reads the rows from a
temporary newline-delimited JSON file typed after the target table. Both handle 100k rows in
seconds. When several rows share a key in one upsert, the last one wins.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from noetl.errors import ToolError
from noetl.settings import load_settings
from noetl.tools import duckdb as duckdb_tool
from noetl.tools import postgres as postgres_tool
from noetl.tools._sqlconv import sql_value_to_json
from noetl.tools.base import ToolCall

MODES = ("insert", "upsert")

# --------------------------------------------------------------------------------------------
# What to write
# --------------------------------------------------------------------------------------------


def rows_from_data(data: Any) -> list[dict[str, Any]]:
    """The rows to write: a list of mappings, one mapping, or a result with ``rows``."""
    if data is None:
        return []
    if isinstance(data, dict):
        if isinstance(data.get("rows"), list):
            data = data["rows"]
        elif "status_code" in data and isinstance(data.get("data"), list):
            data = data["data"]  # an http tool result
        else:
            return [data]
    if not isinstance(data, list):
        raise ToolError(
            f"sink data must be a list of mappings or a mapping, got {type(data).__name__}", kind="sink"
        )
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise ToolError(f"sink row {index} is a {type(row).__name__}, not a mapping", kind="sink")
    return data


def _key_columns(config: dict[str, Any]) -> list[str]:
    key = config.get("key") or config.get("keys") or []
    keys = [key] if isinstance(key, str) else [str(k) for k in key]
    return [k.strip() for k in keys if k and k.strip()]


def _columns(config: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    if config.get("columns"):
        return [str(c) for c in config["columns"]]
    seen: dict[str, None] = {}
    for row in rows:
        for column in row:
            seen.setdefault(str(column), None)
    return list(seen)


def _last_row_per_key(rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """One row per key (the last), so one upsert never touches a row twice."""
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        by_key[tuple(json.dumps(row.get(k), sort_keys=True, default=str) for k in keys)] = row
    return list(by_key.values())


def _table_parts(table: str) -> list[str]:
    parts = [part.strip().strip('"') for part in table.split(".")]
    if not all(parts) or len(parts) > 3:
        raise ToolError(f"sink table {table!r} is not a valid table name", kind="config")
    return parts


# Column types for `create: true`, from the first non-null value of each column.
def _inferred_type(values: list[Any], dialect: str) -> str:
    sample = next((v for v in values if v is not None), None)
    postgres = dialect == "postgres"
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, int):
        return "bigint"
    if isinstance(sample, float | Decimal):
        return "double precision" if postgres else "DOUBLE"
    if isinstance(sample, dict | list):
        return "jsonb" if postgres else "JSON"
    if isinstance(sample, dt.datetime):
        return "timestamptz" if postgres else "TIMESTAMP"
    if isinstance(sample, dt.date):
        return "date"
    return "text" if postgres else "VARCHAR"


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


async def _pg_table(
    connection: psycopg.AsyncConnection[Any], table: str
) -> tuple[str, dict[str, str]] | None:
    """(the table's quoted name, {column: type category}) or None when there is no such table."""
    cursor = await connection.execute("SELECT to_regclass(%s)::oid, to_regclass(%s)::text", [table, table])
    found = await cursor.fetchone()
    if found is None or found[0] is None:
        return None
    cursor = await connection.execute(
        "SELECT a.attname, t.typname, t.typcategory FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
        [found[0]],
    )
    categories = {}
    for name, type_name, category in await cursor.fetchall():
        categories[name] = "json" if type_name in ("json", "jsonb") else str(category)
    return str(found[1]), categories


async def _pg_create(
    connection: psycopg.AsyncConnection[Any],
    table: str,
    columns: list[str],
    rows: list[dict[str, Any]],
    keys: list[str],
) -> None:
    definitions = [
        sql.SQL("{} {}").format(
            sql.Identifier(c), sql.SQL(_inferred_type([r.get(c) for r in rows], "postgres"))
        )
        for c in columns
    ]
    if keys:
        definitions.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, keys))))
    await connection.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
            sql.Identifier(*_table_parts(table)), sql.SQL(", ").join(definitions)
        )
    )


_COPY_AS_IS = frozenset({str, int, float, bool, type(None)})


_NOT_JSON = object()


def _json_text(value: Any) -> Any:
    """The value a string of JSON text stands for (a `{{ x | tojson }}` bound for a JSON column
    is stored as the structure, not as a string holding it), else _NOT_JSON."""
    if not isinstance(value, str):
        return _NOT_JSON
    try:
        return json.loads(value)
    except ValueError:
        return _NOT_JSON


def _pg_value(value: Any, category: str) -> Any:
    """A Python value the way the target column wants it (COPY needs dicts wrapped as JSON)."""
    if value is None:
        return None
    if category == "json":
        if _json_text(value) is not _NOT_JSON:
            return value  # already JSON text
        return Jsonb(sql_value_to_json(value))
    if isinstance(value, dict) or (isinstance(value, list) and category != "A"):
        return json.dumps(sql_value_to_json(value))
    return value


async def _pg_copy(
    cursor: psycopg.AsyncCursor[Any],
    target: sql.Composable,
    columns: list[str],
    categories: dict[str, str],
    rows: list[dict[str, Any]],
) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    column_categories = [categories.get(c, "") for c in columns]
    pairs = list(zip(columns, column_categories, strict=True))
    async with cursor.copy(statement) as copy:
        for row in rows:
            # Plain scalars go to COPY as they are; only JSON-ish values need converting (hot loop).
            await copy.write_row(
                [value if type(value) in _COPY_AS_IS and category != "json" else _pg_value(value, category)
                 for column, category in pairs for value in (row.get(column),)]
            )


async def _pg_upsert(
    cursor: psycopg.AsyncCursor[Any],
    target: sql.Composable,
    columns: list[str],
    categories: dict[str, str],
    rows: list[dict[str, Any]],
    keys: list[str],
) -> int:
    staging = sql.Identifier("noetl_sink_staging")
    column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
    await cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging))
    await cursor.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            staging, column_list, target
        )
    )
    await _pg_copy(cursor, staging, columns, categories, rows)
    updates = [c for c in columns if c not in keys]
    action = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in updates
            )
        )
        if updates
        else sql.SQL("DO NOTHING")
    )
    await cursor.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) {}").format(
            target, column_list, column_list, staging, sql.SQL(", ").join(map(sql.Identifier, keys)), action
        )
    )
    return max(cursor.rowcount, 0)


async def _write_postgres(
    config: dict[str, Any], call: ToolCall, table: str, mode: str, keys: list[str], rows: list[dict[str, Any]]
) -> int:
    conninfo = await postgres_tool.resolve_conninfo(config, call)
    redactor = postgres_tool.make_redactor(call)
    columns = _columns(config, rows)
    async with postgres_tool.pooled_connection(conninfo, redactor) as connection:
        try:
            async with connection.transaction():
                found = await _pg_table(connection, table)
                if found is None and config.get("create"):
                    await _pg_create(connection, table, columns, rows, keys)
                    found = await _pg_table(connection, table)
                if found is None:
                    raise _no_table(table)
                quoted, categories = found
                _check_columns(table, columns, categories)
                async with connection.cursor() as cursor:
                    if mode == "upsert":
                        return await _pg_upsert(cursor, sql.SQL(quoted), columns, categories, rows, keys)
                    await _pg_copy(cursor, sql.SQL(quoted), columns, categories, rows)
                    return len(rows)
        except psycopg.Error as exc:
            message = postgres_tool.clean_message(str(exc).strip(), redactor)
            retryable = getattr(exc, "sqlstate", None) in ("40001", "40P01") or isinstance(
                exc, psycopg.OperationalError
            )
            raise ToolError(
                f"sink into {table!r} failed: {message}", kind="sink", retryable=retryable
            ) from None


def _no_table(table: str) -> ToolError:
    return ToolError(f"sink table {table!r} does not exist (set `create: true` to create it)", kind="sink")


def _check_columns(table: str, columns: list[str], existing: dict[str, Any]) -> None:
    missing = [c for c in columns if c not in existing]
    if missing:
        raise ToolError(f"sink table {table!r} has no column(s) {', '.join(map(repr, missing))}", kind="sink")


# --------------------------------------------------------------------------------------------
# DuckDB
# --------------------------------------------------------------------------------------------


def _duck_table(connection: duckdb.DuckDBPyConnection, quoted: str) -> dict[str, str] | None:
    try:
        described = connection.execute(f"DESCRIBE {quoted}").fetchall()
    except duckdb.CatalogException:
        return None
    return {str(row[0]): str(row[1]) for row in described}


def _duck_create(
    connection: duckdb.DuckDBPyConnection,
    quoted: str,
    columns: list[str],
    rows: list[dict[str, Any]],
    keys: list[str],
) -> None:
    definitions = [
        f"{duckdb_tool.quote_identifier(c)} {_inferred_type([r.get(c) for r in rows], 'duckdb')}"
        for c in columns
    ]
    if keys:
        definitions.append(f"PRIMARY KEY ({', '.join(map(duckdb_tool.quote_identifier, keys))})")
    connection.execute(f"CREATE TABLE IF NOT EXISTS {quoted} ({', '.join(definitions)})")


def _with_json_text_parsed(row: dict[str, Any], json_columns: list[str]) -> dict[str, Any]:
    parsed = {c: _json_text(row.get(c)) for c in json_columns}
    return {**row, **{c: v for c, v in parsed.items() if v is not _NOT_JSON}}


def _write_ndjson(rows: list[dict[str, Any]], columns: list[str]) -> Path:
    directory = load_settings().data_dir / "duckdb" / "tmp"
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="sink-", suffix=".ndjson", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({c: sql_value_to_json(row.get(c)) for c in columns}))
            handle.write("\n")
    return Path(name)


def _duck_write(
    database: str,
    table: str,
    mode: str,
    keys: list[str],
    rows: list[dict[str, Any]],
    columns: list[str],
    create: bool,
) -> int:
    quoted = ".".join(map(duckdb_tool.quote_identifier, _table_parts(table)))
    with duckdb_tool.open_database(database) as connection:
        types = _duck_table(connection, quoted)
        if types is None and create:
            _duck_create(connection, quoted, columns, rows, keys)
            types = _duck_table(connection, quoted)
        if types is None:
            raise _no_table(table)
        _check_columns(table, columns, types)
        json_columns = [c for c in columns if types[c] == "JSON"]
        if json_columns:
            rows = [_with_json_text_parsed(row, json_columns) for row in rows]
        file = _write_ndjson(rows, columns)
        try:
            column_list = ", ".join(map(duckdb_tool.quote_identifier, columns))
            spec = (
                "{" + ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': '{types[c]}'" for c in columns) + "}"
            )
            source = f"read_json('{file}', format = 'newline_delimited', columns = {spec})"
            statement = f"INSERT INTO {quoted} ({column_list}) SELECT {column_list} FROM {source}"
            if mode == "upsert":
                updates = [c for c in columns if c not in keys]
                conflict = ", ".join(map(duckdb_tool.quote_identifier, keys))
                action = (
                    "DO UPDATE SET "
                    + ", ".join(
                        f"{duckdb_tool.quote_identifier(c)} = EXCLUDED.{duckdb_tool.quote_identifier(c)}"
                        for c in updates
                    )
                    if updates
                    else "DO NOTHING"
                )
                statement += f" ON CONFLICT ({conflict}) {action}"
            connection.execute("BEGIN TRANSACTION")
            try:
                connection.execute(statement)
                connection.execute("COMMIT")
            except duckdb.Error:
                connection.execute("ROLLBACK")
                raise
            return len(rows)
        except duckdb.Error as exc:
            raise ToolError(f"sink into {table!r} failed: {exc}", kind="sink") from None
        finally:
            file.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _target(config: dict[str, Any]) -> str:
    target = config.get("tool") or config.get("storage") or config.get("type") or "postgres"
    if isinstance(target, dict):
        target = target.get("kind") or target.get("type") or "postgres"
    target = str(target).lower()
    if target in ("postgres", "postgresql", "pg"):
        return "postgres"
    if target == "duckdb":
        return "duckdb"
    raise ToolError(f"sink target {target!r} is not supported (postgres, duckdb)", kind="config")


async def write_sink(config: dict[str, Any], data: Any, call: ToolCall) -> dict[str, Any]:
    """Write ``data`` into ``config['table']``; returns ``{status, table, rows_written}``."""
    target = _target(config)
    table = config.get("table")
    if not table or not isinstance(table, str):
        raise ToolError("sink needs a `table`", kind="config")
    mode = str(config.get("mode") or "insert").lower()
    mode = "insert" if mode == "append" else mode
    if mode not in MODES:
        raise ToolError(f"sink mode {mode!r} is not supported (insert, upsert)", kind="config")
    keys = _key_columns(config)
    if mode == "upsert" and not keys:
        raise ToolError("an upsert sink needs `key` (the conflict column or columns)", kind="config")
    rows = rows_from_data(data)
    if mode == "upsert":
        rows = _last_row_per_key(rows, keys)
    if not rows:
        return {"status": "ok", "table": table, "rows_written": 0}
    if target == "postgres":
        written = await _write_postgres(config, call, table, mode, keys, rows)
    else:
        database = duckdb_tool.resolve_database(config, call)
        columns = _columns(config, rows)
        written = await asyncio.to_thread(
            _duck_write, database, table, mode, keys, rows, columns, bool(config.get("create"))
        )
    return {"status": "ok", "table": table, "rows_written": written}
