"""Webhooks: ``POST /api/hooks/{name}`` starts an execution of the hook's catalog entry (its own
signature or token is its authentication, not the API token); ``/api/hooks`` manages them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from noetl import hooks
from noetl.clock import utc_now
from noetl.runtime.request import StartOptions
from noetl.server.auth import PUBLIC, requires
from noetl.server.guard import ParsedBodyRoute
from noetl.server.routes.catalog import find_entry
from noetl.server.state import State

router = APIRouter(tags=["hooks"], route_class=ParsedBodyRoute)


class HookRequest(BaseModel):
    name: str
    path: str
    secret: str | None = None
    token: str | None = None
    payload_template: Any = None


@router.get("/hooks", summary="Webhooks (without their secrets)")
@requires("admin")
async def list_hooks(state: State) -> list[dict[str, Any]]:
    return [hooks.hook_view(h) for h in await state.store.list_hooks()]


@router.post("/hooks", summary="Create or replace a webhook of a catalog playbook")
@requires("admin")
async def add_hook(body: HookRequest, state: State) -> dict[str, Any]:
    entry = await find_entry(state, path=body.path, catalog_id=None, version=None)
    record = hooks.checked_hook(name=body.name, path=entry.path, secret=body.secret, token=body.token,
                                payload_template=body.payload_template, where="")
    return hooks.hook_view(await state.store.put_hook(record))


@router.delete("/hooks/{name}", summary="Delete a webhook and its delivery records")
@requires("admin")
async def delete_hook(name: str, state: State) -> dict[str, Any]:
    await hooks.require_hook(state.store, name)
    await state.store.delete_hook(name)
    return {"name": name, "deleted": True}


@router.post("/hooks/{name}", summary="A webhook delivery: start an execution of the hook's playbook")
@requires(PUBLIC)
async def deliver(name: str, request: Request, state: State) -> dict[str, Any]:
    delivery = hooks.Delivery(body=await request.body(), headers={k.lower(): v for k, v in request.headers.items()})
    try:
        hook, payload = await hooks.accept(state.store, name, delivery, utc_now())
        entry = await find_entry(state, path=hook.path, catalog_id=None, version=None)
        await hooks.claim(state.store, hook, delivery)
    except hooks.DeliveryRefused as exc:
        raise HTTPException(status_code=exc.status, detail=exc.message) from None
    meta = {"hook": hook.name, **({"delivery": delivery.delivery_id} if delivery.delivery_id else {})}
    execution_id = await state.core.submit(playbook_text=entry.content, source=f"catalog://{entry.path}@{entry.version}",
                                           payload=payload, start=StartOptions(meta=meta))
    return {"execution_id": execution_id, "status": "started", "hook": hook.name, "path": entry.path,
            "version": entry.version}
