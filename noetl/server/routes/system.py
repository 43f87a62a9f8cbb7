"""Health, Prometheus metrics and the SQL endpoint."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Response

from noetl.engine.events import EXECUTION_STATUSES
from noetl.errors import ForbiddenError, InputError, StoreError
from noetl.server.auth import requires
from noetl.server.guard import ParsedBodyRoute
from noetl.server.schemas import SqlRequest
from noetl.server.sqlapi import caller_conninfo, reader_conninfo, run_statement
from noetl.server.state import ServerState, State
from noetl.store.postgres.queue import CommandQueue
from noetl.store.postgres.stats import StepTotals, read_step_stats

public = APIRouter(tags=["system"])
router = APIRouter(tags=["system"], route_class=ParsedBodyRoute)


@public.get("/health", summary="Liveness and database status")
async def health(state: State) -> Response:
    return await _health(state)


@router.get("/health", summary="Liveness and database status")
@router.get("/v2/health", include_in_schema=False)
@requires("read")
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
    """Read from PostgreSQL at each scrape, so every server reports the whole deployment."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(_Snapshot(await _gather_metrics(state)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


STEP_STATUSES = ("completed", "failed")


async def _gather_metrics(state: ServerState) -> list[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    executions = GaugeMetricFamily("noetl_executions", "Executions by status", labels=["status"])
    queue = GaugeMetricFamily("noetl_queue_commands", "Commands in the queue by status", labels=["status"])
    lease_age = GaugeMetricFamily("noetl_oldest_lease_age_seconds",
                                  "Seconds since the oldest leased command's last heartbeat")
    steps = CounterMetricFamily("noetl_steps", "Step runs (tool calls; a loop iteration is one) recorded, by status",
                                labels=["status"])
    durations = HistogramMetricFamily("noetl_step_duration_seconds", "How long step runs took on workers",
                                      labels=["status"])
    up = GaugeMetricFamily("noetl_database_up", "1 when PostgreSQL answered this scrape")
    try:
        counts = dict(await state.store.read("counting executions", "executions_by_status", {}))
        stats = await CommandQueue(state.store).stats(state.core.now())
        totals = await read_step_stats(state.store)
    except StoreError:
        up.add_metric([], 0)
        return [up]
    for status in sorted({*EXECUTION_STATUSES, *counts}):
        executions.add_metric([status], counts.get(status, 0))
    for status in ("queued", "leased"):
        queue.add_metric([status], stats[status])
    lease_age.add_metric([], stats["oldest_lease_age_seconds"])
    for status in sorted({*STEP_STATUSES, *totals}):
        total = totals.get(status, StepTotals())
        steps.add_metric([status], total.count)
        durations.add_metric([status], total.cumulative(), total.duration_sum)
    up.add_metric([], 1)
    return [executions, queue, lease_age, steps, durations, up]


class _Snapshot:
    """A collector that hands out metric families gathered beforehand (the scrape reads the database
    once, asynchronously; prometheus_client collectors are synchronous)."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


@router.post("/postgres/execute", summary="Run one SQL statement (off unless NOETL_ENABLE_SQL_API)")
@requires("admin")
async def postgres_execute(body: SqlRequest, state: State) -> dict[str, Any]:
    """Read-only as the reader role (docs/security.md); ``connection_string`` or ``credential``
    query another database under the same rules; ``write: true`` needs NOETL_SQL_API_WRITE."""
    if not state.config.sql_api_enabled:
        raise HTTPException(status_code=403, detail="the SQL endpoint is disabled; "
                            "set NOETL_ENABLE_SQL_API=true on the server to enable it")
    query = body.query or body.sql
    if not query or not query.strip():
        raise InputError("query: an SQL statement is required")
    if body.write and not state.config.sql_api_writable:
        raise ForbiddenError("writes through the SQL endpoint need NOETL_SQL_API_WRITE=true on the server")
    if body.connection_string or body.credential:
        conninfo = await _other_database(state, body)
        return await run_statement(conninfo, query, body.params, schema=body.schema_, callers=True)
    if body.write:
        return await run_statement(state.config.database_url, query, body.params, schema=body.schema_, write=True)
    conninfo = await reader_conninfo(state.store, state.config.database_url)
    return await run_statement(conninfo, query, body.params, schema=body.schema_)


async def _other_database(state: ServerState, body: SqlRequest) -> str:
    if body.connection_string and body.credential:
        raise InputError("give connection_string or credential, not both")
    if body.connection_string:
        if not body.connection_string.startswith(("postgresql://", "postgres://")):
            raise InputError("connection_string: a postgresql:// URL is required")
        return caller_conninfo(body.connection_string)
    from noetl.credentials import get_credential
    from noetl.errors import ToolError
    from noetl.tools.postgres import conninfo_from_fields

    credential = await get_credential(state.store, str(body.credential))
    try:
        return caller_conninfo(conninfo_from_fields(dict(credential["data"])), where=f"credential {body.credential!r}", credential=True)
    except ToolError as exc:
        raise InputError(f"credential {body.credential!r}: {exc}") from None
