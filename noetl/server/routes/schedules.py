"""Schedules: create, list, pause, resume, delete, backfill (the server's scheduler runs them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from noetl.clock import utc_now
from noetl.scheduling import service
from noetl.scheduling.distributed import DistributedStarter
from noetl.scheduling.scheduler import Scheduler
from noetl.server.auth import requires
from noetl.server.guard import ParsedBodyRoute
from noetl.server.routes.catalog import find_entry
from noetl.server.state import State

router = APIRouter(tags=["schedules"], route_class=ParsedBodyRoute)


class ScheduleRequest(BaseModel):
    path: str
    cron: str
    name: str | None = None
    timezone: str = "UTC"
    payload: dict[str, Any] | None = None
    overlap: str = "skip"
    catchup: str = "latest"
    enabled: bool = True


class BackfillRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str


@router.get("/schedules", summary="Schedules with their next fire time")
@requires("read")
async def list_schedules(state: State) -> list[dict[str, Any]]:
    return [service.schedule_view(s) for s in await state.store.list_schedules()]


@router.post("/schedules", summary="Create or replace a schedule of a catalog playbook")
@requires("admin")
async def add_schedule(body: ScheduleRequest, state: State) -> dict[str, Any]:
    entry = await find_entry(state, path=body.path, catalog_id=None, version=None)
    record = service.checked_schedule(name=body.name or entry.path, path=entry.path, cron=body.cron,
                                      timezone=body.timezone, payload=body.payload, overlap=body.overlap,
                                      catchup=body.catchup, enabled=body.enabled, source="api", where="")
    return service.schedule_view(await state.store.put_schedule(record))


@router.get("/schedules/{name:path}/fires", summary="A schedule's fire times, latest first")
@requires("read")
async def list_fires(name: str, state: State, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
    await service.require_schedule(state.store, name)
    return [{"scheduled_for": f.scheduled_for, "status": f.status, "execution_id": f.execution_id}
            for f in await state.store.list_fires(name, limit=limit)]


@router.post("/schedules/{name:path}/pause", summary="Pause a schedule")
@requires("admin")
async def pause(name: str, state: State) -> dict[str, Any]:
    return service.schedule_view(await service.set_enabled(state.store, name, False))


@router.post("/schedules/{name:path}/resume", summary="Resume a paused schedule")
@requires("admin")
async def resume(name: str, state: State) -> dict[str, Any]:
    return service.schedule_view(await service.set_enabled(state.store, name, True))


@router.post("/schedules/{name:path}/backfill", summary="Start every fire time of a range that has not run")
@requires("admin")
async def backfill(name: str, body: BackfillRequest, state: State) -> list[dict[str, Any]]:
    schedule = await service.require_schedule(state.store, name)
    first, last = service.backfill_range(body.from_, body.to)
    fired = await Scheduler(state.store, DistributedStarter(state.core)).backfill(schedule, first, last)
    return [{"scheduled_for": f.scheduled_for, "execution_id": f.execution_id, "status": f.status} for f in fired]


@router.post("/schedules/{name:path}/trigger", summary="Run a schedule's playbook now (paused or not)")
@requires("execute")
async def trigger(name: str, state: State) -> dict[str, Any]:
    schedule = await service.require_schedule(state.store, name)
    fired = await Scheduler(state.store, DistributedStarter(state.core)).run_now(schedule, utc_now())
    return service.fired_view(fired)


@router.get("/schedules/{name:path}", summary="One schedule")
@requires("read")
async def get_schedule(name: str, state: State) -> dict[str, Any]:
    return service.schedule_view(await service.require_schedule(state.store, name))


@router.delete("/schedules/{name:path}", summary="Delete a schedule and its fire records")
@requires("admin")
async def delete_schedule(name: str, state: State) -> dict[str, Any]:
    await service.delete(state.store, name)
    return {"name": name, "deleted": True}
