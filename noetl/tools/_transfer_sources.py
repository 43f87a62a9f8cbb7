"""Where a ``transfer`` reads from: chunks of rows (mappings) from PostgreSQL, DuckDB or HTTP.

Each source is an async iterator of chunks of at most ``chunk_size`` rows, so a transfer holds one
chunk at a time: PostgreSQL reads through a server-side cursor, DuckDB fetches ``chunk_size`` rows
at a time, and HTTP takes the JSON list of one response (or the list under ``path``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg

from noetl.errors import ToolError
from noetl.tools import duckdb as duckdb_tool
from noetl.tools import postgres as postgres_tool
from noetl.tools._sqlconv import rows_to_dicts
from noetl.tools.base import ToolCall

Chunk = list[dict[str, Any]]


def source_query(source: dict[str, Any]) -> str:
    query = source.get("query") or source.get("sql") or source.get("command")
    if not isinstance(query, str) or not query.strip():
        raise ToolError(f"transfer source {source.get('type')!r} needs `query`", kind="config")
    return query.strip().rstrip(";")


async def postgres_chunks(source: dict[str, Any], chunk_size: int, call: ToolCall) -> AsyncIterator[Chunk]:
    """Rows of ``source.query`` through a server-side cursor (a transaction on a pooled connection)."""
    query = source_query(source)
    conninfo = await postgres_tool.resolve_conninfo(source, call)
    redactor = postgres_tool.make_redactor(call)
    async with postgres_tool.pooled_connection(conninfo, redactor) as connection:
        try:
            async with connection.transaction(), connection.cursor(name="noetl_transfer") as cursor:
                await cursor.execute(query, source.get("params"))
                columns = [c.name for c in cursor.description or []]
                while rows := await cursor.fetchmany(chunk_size):
                    yield rows_to_dicts(columns, rows)
        except psycopg.Error as exc:
            raise postgres_tool.sql_error(exc, 0, 1, query, redactor) from None


async def duckdb_chunks(source: dict[str, Any], chunk_size: int, call: ToolCall) -> AsyncIterator[Chunk]:
    """Rows of ``source.query`` on a DuckDB database, ``chunk_size`` at a time (in a thread)."""
    import duckdb

    query = source_query(source)
    database = duckdb_tool.resolve_database(source, call)
    with duckdb_tool.open_database(database) as connection:
        try:
            await asyncio.to_thread(connection.execute, query, source.get("params"))
            columns = [d[0] for d in connection.description or []]
            while rows := await asyncio.to_thread(connection.fetchmany, chunk_size):
                yield rows_to_dicts(columns, rows)
        except duckdb.Error as exc:
            raise ToolError(f"transfer source query failed on DuckDB: {exc}", kind="sql") from None


async def http_chunks(source: dict[str, Any], chunk_size: int, call: ToolCall) -> AsyncIterator[Chunk]:
    """The JSON list of one response (or the list under ``source.path``, a dotted path), in chunks."""
    from noetl.tools.http import run_http

    config = {k: v for k, v in source.items() if k not in ("type", "path")}
    response = await run_http(config, call)
    data = response.get("data")
    path = source.get("path")
    for part in str(path).split(".") if path else []:
        if not isinstance(data, dict) or part not in data:
            raise ToolError(f"transfer source: the response has no {part!r} on the path {path!r}", kind="data")
        data = data[part]
    if not isinstance(data, list):
        where = f" under {path!r}" if path else ""
        raise ToolError(f"transfer source: expected a JSON list{where}, got {type(data).__name__}", kind="data")
    for start in range(0, len(data), chunk_size):
        chunk = data[start:start + chunk_size]
        for index, row in enumerate(chunk, start):
            if not isinstance(row, dict):
                raise ToolError(f"transfer source: item {index} is a {type(row).__name__}, not an object",
                                kind="data")
        yield chunk


SOURCES = {"postgres": postgres_chunks, "duckdb": duckdb_chunks, "http": http_chunks}
