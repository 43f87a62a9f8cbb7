"""The worker API: lease, heartbeat and report for workers that hold no database credentials.

The routes translate HTTP to :class:`noetl.runtime.gateway.WorkerGateway`; everything a decision
involves happens there, on the server's decision core.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from noetl.errors import ErrorInfo, PlaybookError, ToolError
from noetl.results.spec import MAX_DURATION_SECONDS
from noetl.runtime.gateway import WorkerGateway
from noetl.server.guard import ParsedBodyRoute
from noetl.server.state import State

router = APIRouter(prefix="/workers", tags=["workers"], route_class=ParsedBodyRoute)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeaseRequest(_Body):
    worker: str = Field(min_length=1, max_length=200, description="The worker's name (lease owner).")
    limit: int = Field(ge=0, le=64, description="How many commands the worker can start now.")
    lease_seconds: float = Field(default=30.0, gt=0, le=3600)


class HeartbeatRequest(_Body):
    worker: str = Field(min_length=1, max_length=200)
    command_ids: list[str] = Field(max_length=10_000)
    lease_seconds: float = Field(default=30.0, gt=0, le=3600)


class ReportRequest(_Body):
    worker: str = Field(min_length=1, max_length=200)
    command_id: str = Field(min_length=1, max_length=200)
    lease_id: str | None = Field(default=None, min_length=1, max_length=200,
                                 description="The batch row the command is a member of (the lease's item).")
    attempt: int = Field(ge=1)
    event: dict[str, Any]
    secrets: list[str] = Field(default_factory=list, description="Secret values the run resolved, to redact.")


class LogLineIn(_Body):
    execution_id: str = Field(min_length=1, max_length=40)
    step: str = Field(max_length=1000)
    loop_index: int | None = None
    stream: Literal["stdout", "stderr"] = "stdout"
    line: str
    created_at: str = Field(min_length=1, max_length=64)


class LogsRequest(_Body):
    worker: str = Field(min_length=1, max_length=200)
    lines: list[LogLineIn] = Field(max_length=10_000)


class CredentialRequest(_Body):
    execution_id: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=200)


class ChildRequest(_Body):
    execution_id: str = Field(min_length=1, max_length=40)
    command_id: str = Field(min_length=1, max_length=200)
    call_index: int = Field(ge=1)
    path: str = Field(min_length=1, max_length=1000)
    version: int | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list,
                               description="Secret values the calling command resolved, for the child to redact.")


async def _gateway(state: State) -> WorkerGateway:
    # Stateless over the server's decision core: cheap per request. A coroutine, so FastAPI does not
    # run it on its thread pool.
    return WorkerGateway(state.core)


Gateway = Annotated[WorkerGateway, Depends(_gateway)]


@router.post("/lease", summary="Lease up to `limit` queued commands, with what running them needs")
async def lease(body: LeaseRequest, gateway: Gateway) -> dict[str, Any]:
    commands = await gateway.lease(worker=body.worker, limit=body.limit, lease_seconds=body.lease_seconds)
    return {"commands": commands}


@router.post("/heartbeat", summary="Extend the leases still held; answers the ids still held")
async def heartbeat(body: HeartbeatRequest, gateway: Gateway) -> dict[str, Any]:
    held = await gateway.heartbeat(worker=body.worker, command_ids=body.command_ids,
                                   lease_seconds=body.lease_seconds)
    return {"held": held}


@router.post("/report", summary="Record a command's outcome and decide what follows")
async def report(body: ReportRequest, gateway: Gateway) -> dict[str, Any]:
    recorded = await gateway.report(worker=body.worker, command_id=body.command_id, attempt=body.attempt,
                                    event=body.event, secrets=body.secrets, lease_id=body.lease_id)
    return {"status": "processed", "recorded": recorded}


@router.post("/results", summary="Store a running command's result by reference: the body is the result's "
             "JSON text (at most NOETL_MAX_BODY_BYTES); answers the reference its report carries")
async def store_result(request: Request, gateway: Gateway,
                       execution_id: Annotated[str, Query(min_length=1, max_length=40)],
                       command_id: Annotated[str, Query(min_length=1, max_length=200)],
                       sha256: Annotated[str, Query(pattern="^[0-9a-f]{64}$")],
                       ttl_seconds: Annotated[float | None, Query(gt=0, le=MAX_DURATION_SECONDS)] = None) -> dict[str, Any]:
    data = await request.body()  # bounded by the request guard before it gets here
    return await gateway.store_result(execution_id=execution_id, command_id=command_id, data=data, sha256=sha256,
                                      ttl_seconds=ttl_seconds)


@router.post("/logs", summary="Store lines that running commands printed (streamed logs)")
async def logs(body: LogsRequest, gateway: Gateway) -> dict[str, Any]:
    stored = await gateway.logs([line.model_dump() for line in body.lines])
    return {"stored": stored}


@router.post("/credential", summary="A credential a running command needs (decrypted)")
async def credential(body: CredentialRequest, gateway: Gateway) -> dict[str, Any]:
    return await gateway.credential(execution_id=body.execution_id, name=body.name)


@router.post("/child", summary="Start (once) the child playbook a running command calls")
async def child(body: ChildRequest, gateway: Gateway) -> dict[str, Any]:
    try:
        return await gateway.start_child(execution_id=body.execution_id, command_id=body.command_id,
                                         call_index=body.call_index, path=body.path, version=body.version,
                                         payload=body.payload, secrets=body.secrets)
    except ToolError as exc:
        return {"error": ErrorInfo(exc.kind, str(exc)).to_dict()}
    except PlaybookError as exc:
        return {"error": ErrorInfo("playbook", str(exc).splitlines()[0]).to_dict()}
