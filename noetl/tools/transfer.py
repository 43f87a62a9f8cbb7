"""``transfer``: move rows from a source to a table, in chunks, with bounded memory.

Config::

    source: {type: postgres|duckdb|http, auth, query | url, method, params, headers, path}
    target: {type: postgres|duckdb, auth, table, mapping: {target_column: source_field},
             mode: insert|upsert|replace, key}
    chunk_size: 10000

Result: ``{rows_read, rows_written, chunks}``.

PostgreSQL to PostgreSQL is a COPY pipe: ``COPY (SELECT <source fields cast to the target
types> FROM (<query>) q) TO STDOUT`` streamed into ``COPY <table> FROM STDIN`` a chunk at a time,
no row decoded in Python. Any other pair reads mappings from the source (a server-side cursor on
PostgreSQL, ``fetchmany`` on DuckDB, the JSON list of an HTTP response or the list under
``source.path``), maps and casts them to the target's columns, and writes each chunk: COPY into
PostgreSQL (:mod:`noetl.tools._transfer_pg`), the sink's typed JSON load into DuckDB. Without a
``mapping`` every source field goes to the target column of the same name.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from noetl.dsl.check_transfer import (
    TRANSFER_MODES,
    TRANSFER_SOURCE_TYPES,
    TRANSFER_TARGET_TYPES,
    TYPE_ALIASES,
)
from noetl.errors import ToolError
from noetl.tools import duckdb as duckdb_tool
from noetl.tools import postgres as postgres_tool
from noetl.tools._sqlcast import lookup
from noetl.tools._transfer_pg import TargetTable, copy_pipe, write_chunks
from noetl.tools._transfer_sources import SOURCES, Chunk, source_query
from noetl.tools.base import ToolCall
from noetl.tools.sink import _duck_write, _key_columns, _table_parts

SOURCE_TYPES = TRANSFER_SOURCE_TYPES
TARGET_TYPES = TRANSFER_TARGET_TYPES
MODES = TRANSFER_MODES
DEFAULT_CHUNK_SIZE = 10_000


def transfer_type(side: dict[str, Any], what: str, known: tuple[str, ...]) -> str:
    kind = str(side.get("type") or side.get("kind") or "").lower()
    kind = TYPE_ALIASES.get(kind, kind)
    if kind not in known:
        raise ToolError(f"transfer {what} type {kind or None!r} is not supported ({', '.join(known)})", kind="config")
    return kind


def _settings(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    source, target = config.get("source"), config.get("target")
    if not isinstance(source, dict) or not isinstance(target, dict):
        raise ToolError("transfer needs `source` and `target` mappings", kind="config")
    source = {**source, "type": transfer_type(source, "source", SOURCE_TYPES)}
    target = {**target, "type": transfer_type(target, "target", TARGET_TYPES)}
    for side in (source, target):
        if "credential" in side and "auth" not in side:
            side["auth"] = side.pop("credential")  # the older alias, as on the postgres and http tools
    mode = str(target.get("mode") or "insert").lower()
    if mode not in MODES:
        raise ToolError(f"transfer target mode {mode!r} is not supported ({', '.join(MODES)})", kind="config")
    target["mode"] = mode
    if mode == "upsert" and not _key_columns(target):
        raise ToolError("a transfer with mode upsert needs `target.key` (the conflict column or columns)",
                        kind="config")
    if not isinstance(target.get("table"), str) or not target["table"].strip():
        raise ToolError("transfer target needs `table`", kind="config")
    mapping = target.get("mapping")
    if mapping is not None and (not isinstance(mapping, dict) or not mapping):
        raise ToolError("transfer target `mapping` must be a non-empty {target_column: source_field} mapping",
                        kind="config")
    try:
        chunk_size = int(config.get("chunk_size") or DEFAULT_CHUNK_SIZE)
    except (TypeError, ValueError):
        raise ToolError(f"transfer chunk_size must be a positive integer, not {config.get('chunk_size')!r}",
                        kind="config") from None
    if chunk_size < 1:
        raise ToolError(f"transfer chunk_size must be a positive integer, not {chunk_size}", kind="config")
    return source, target, chunk_size


async def run_transfer(config: dict[str, Any], call: ToolCall) -> dict[str, Any]:
    source, target, chunk_size = _settings(config)
    if target["type"] == "duckdb":
        if source["type"] == "duckdb" and (duckdb_tool.resolve_database(source, call)
                                           == duckdb_tool.resolve_database(target, call)):
            raise ToolError("transfer from a DuckDB database into itself: use one duckdb step with "
                            "INSERT INTO ... SELECT", kind="config")
        return await _into_duckdb(SOURCES[source["type"]](source, chunk_size, call), target, call)
    table = TargetTable(target, postgres_tool.make_redactor(call))
    conninfo = await postgres_tool.resolve_conninfo(target, call)
    if source["type"] == "postgres":
        read, written, count = await asyncio.to_thread(
            copy_pipe, table, source_conninfo=await postgres_tool.resolve_conninfo(source, call),
            target_conninfo=conninfo, query=source_query(source), params=source.get("params"),
            mapping=_given_mapping(target), chunk_size=chunk_size)
    else:
        chunks = SOURCES[source["type"]](source, chunk_size, call)
        read, written, count = await write_chunks(table, conninfo, chunks,
                                                  lambda rows: _mapping(target, _fields(rows)))
    return _result(read, written, count)


def _result(read: int, written: int, chunks: int) -> dict[str, Any]:
    return {"rows_read": read, "rows_written": written, "chunks": chunks}


def _given_mapping(target: dict[str, Any]) -> dict[str, str] | None:
    mapping = target.get("mapping")
    return {str(k): str(v) for k, v in mapping.items()} if mapping else None


def _mapping(target: dict[str, Any], fields: list[str]) -> dict[str, str]:
    return _given_mapping(target) or {f: f for f in fields}


def _fields(rows: Chunk) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


async def _into_duckdb(chunks: AsyncIterator[Chunk], target: dict[str, Any], call: ToolCall) -> dict[str, Any]:
    database = duckdb_tool.resolve_database(target, call)
    table, mode, keys = str(target["table"]), target["mode"], _key_columns(target)
    if mode == "replace":
        await asyncio.to_thread(_duck_empty, database, table)
    read = written = count = 0
    async for rows in chunks:
        mapping = _mapping(target, _fields(rows))
        mapped = [{column: lookup(row, field) for column, field in mapping.items()} for row in rows]
        written += await asyncio.to_thread(_duck_write, database, table, "upsert" if mode == "upsert" else "insert",
                                           keys, mapped, list(mapping), False)
        read += len(rows)
        count += 1
    return _result(read, written, count)


def _duck_empty(database: str, table: str) -> None:
    import duckdb

    quoted = ".".join(map(duckdb_tool.quote_identifier, _table_parts(table)))
    with duckdb_tool.open_database(database) as connection:
        try:
            connection.execute(f"DELETE FROM {quoted}")
        except duckdb.Error as exc:
            raise ToolError(f"transfer into {table!r} failed: {exc}", kind="transfer") from None
