"""Health, Prometheus metrics and the SQL endpoint."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from fastapi import APIRouter, HTTPException, Request, Response
from psycopg import sql

from noetl.errors import InputError, StoreError
from noetl.server.schemas import SqlRequest
from noetl.server.state import ServerState, State
from noetl.store.postgres.queue import CommandQueue

public = APIRouter(tags=["system"])
router = APIRouter(tags=["system"])


@public.get("/health", summary="Liveness and database status")
async def health(state: State) -> Response:
    return await _health(state)


@router.get("/health", summary="Liveness and database status")
@router.get("/v2/health", include_in_schema=False)
async def api_health(state: State) -> Response:
    return await _health(state)


async def _health(state: ServerState) -> Response:
    from fastapi.responses import JSONResponse

    started = time.perf_counter()
    try:
        await state.store.read("checking the database", "ping", {})
        database = {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        return JSONResponse({"status": "ok", "database": database})
    except StoreError as exc:
        return JSONResponse({"status": "degraded", "database": {"status": "unavailable", "error": str(exc)}},
                            status_code=503)


@public.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: State) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    executions = Gauge("noetl_executions", "Executions by status", ["status"], registry=registry)
    queue = Gauge("noetl_queue_commands", "Commands in the queue by status", ["status"], registry=registry)
    lease_age = Gauge("noetl_oldest_lease_age_seconds", "Seconds since the oldest leased command's last heartbeat",
                      registry=registry)
    up = Gauge("noetl_database_up", "1 when PostgreSQL answered this scrape", registry=registry)
    try:
        for status, count in await state.store.read("counting executions", "executions_by_status", {}):
            executions.labels(status=status).set(count)
        stats = await CommandQueue(state.store).stats(state.core.now())
        queue.labels(status="queued").set(stats["queued"])
        queue.labels(status="leased").set(stats["leased"])
        lease_age.set(stats["oldest_lease_age_seconds"])
        up.set(1)
    except StoreError:
        up.set(0)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/postgres/execute", summary="Run SQL on the NoETL database (off unless NOETL_ENABLE_SQL_API)")
async def postgres_execute(body: SqlRequest, request: Request,
                           state: State) -> dict[str, Any]:
    if not state.config.sql_api_enabled:
        raise HTTPException(status_code=403, detail="the SQL endpoint is disabled; "
                            "set NOETL_ENABLE_SQL_API=true on the server to enable it")
    query = body.query or body.sql
    if not query or not query.strip():
        raise InputError("query: an SQL statement is required")
    return await run_sql(state, query, body.params, body.schema_)


async def run_sql(state: ServerState, query: str, params: Any, schema: str | None) -> dict[str, Any]:
    """Run ``query`` in a read-only transaction (unless the server allows writes)."""
    try:
        async with state.store.connection() as conn, conn.transaction():
            if not state.config.sql_api_writable:
                await conn.execute("SET TRANSACTION READ ONLY")
            if schema:
                await conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema)))
            cursor = await conn.execute(query.encode("utf-8"), params or None)
            if cursor.description is None:
                return {"columns": [], "rows": [], "rowcount": cursor.rowcount}
            columns = [column.name for column in cursor.description]
            rows = [list(row) for row in await cursor.fetchall()]
            return {"columns": columns, "rows": _jsonable(rows), "rowcount": len(rows)}
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise InputError("the SQL endpoint is read-only (set NOETL_SQL_API_WRITE=true to allow writes): "
                         f"{str(exc).strip().splitlines()[0]}") from exc
    except (psycopg.errors.OperationalError, psycopg.errors.InterfaceError) as exc:
        raise StoreError(f"running SQL failed: {str(exc).strip().splitlines()[0]}") from exc
    except psycopg.Error as exc:
        raise InputError(f"SQL error: {str(exc).strip().splitlines()[0]}") from exc


def _jsonable(rows: list[list[Any]]) -> list[list[Any]]:
    import json

    return json.loads(json.dumps(rows, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)
