"""Completion triggers: "when an execution of PATH completes / fails, start RUN" (the server's
trigger poller fires them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from noetl import triggers
from noetl.server.auth import requires
from noetl.server.guard import ParsedBodyRoute
from noetl.server.routes.catalog import find_entry
from noetl.server.state import State

router = APIRouter(tags=["triggers"], route_class=ParsedBodyRoute)


class TriggerRequest(BaseModel):
    on_path: str
    on: str
    run: str
    name: str | None = None


@router.get("/triggers", summary="Completion triggers")
@requires("admin")
async def list_triggers(state: State) -> list[dict[str, Any]]:
    return [triggers.trigger_view(t) for t in await state.store.list_triggers()]


@router.post("/triggers", summary="Create or replace a completion trigger")
@requires("admin")
async def add_trigger(body: TriggerRequest, state: State) -> dict[str, Any]:
    record = triggers.checked_trigger(on_path=body.on_path, on=body.on, run=body.run, name=body.name, where="")
    await find_entry(state, path=record.run_path, catalog_id=None, version=None)
    return triggers.trigger_view(await state.store.put_trigger(record))


@router.delete("/triggers/{name}", summary="Delete a completion trigger")
@requires("admin")
async def delete_trigger(name: str, state: State) -> dict[str, Any]:
    await triggers.delete(state.store, name)
    return {"name": name, "deleted": True}
