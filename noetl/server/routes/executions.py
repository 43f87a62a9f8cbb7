"""Executions: submit, list, inspect, cancel; external events."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.errors import InputError, NotFoundError
from noetl.runtime.distributed import load_status
from noetl.server.routes.catalog import find_entry
from noetl.server.schemas import ExecuteRequest
from noetl.server.state import ServerState, State
from noetl.store.base import ExecutionRecord
from noetl.store.postgres.queue import LeasedCommand

router = APIRouter(tags=["executions"])


@router.post("/execute", summary="Start an execution of a catalog playbook")
@router.post("/run/playbook", include_in_schema=False)
@router.post("/v2/execute", include_in_schema=False)
async def execute(body: ExecuteRequest, state: State) -> dict[str, Any]:
    entry = await find_entry(state, path=body.path, catalog_id=body.catalog_id, version=body.version)
    parent = str(body.parent_execution_id) if body.parent_execution_id is not None else None
    if parent is not None and await state.store.get_execution(parent) is None:
        raise NotFoundError(f"parent execution {parent} not found")
    execution_id = await state.core.submit(
        playbook_text=entry.content, source=f"catalog://{entry.path}@{entry.version}", payload=body.payload or {},
        merge=body.merge, parent_execution_id=parent)
    return {"execution_id": execution_id, "status": "started", "path": entry.path, "version": entry.version}


@router.get("/executions", summary="Executions, newest first")
async def list_executions(state: State, status: str | None = None, parent_execution_id: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
    records = await state.store.list_executions(status=status, parent_execution_id=parent_execution_id,
                                                limit=limit)
    return [summary(record) for record in records]


@router.get("/executions/{execution_id}", summary="One execution: its row and status document")
async def get_execution(execution_id: str, state: State) -> dict[str, Any]:
    record = await _record(state, execution_id)
    doc = await load_status(state.store, execution_id)
    return {**summary(record), **doc, "payload": record.payload}


@router.get("/executions/{execution_id}/status", summary="The status document (SPEC section 10)")
async def get_status(execution_id: str, state: State) -> dict[str, Any]:
    await _record(state, execution_id)
    return await load_status(state.store, execution_id)


@router.get("/executions/{execution_id}/events", summary="The execution's events in order")
async def get_events(execution_id: str, state: State, after_id: Annotated[int, Query(ge=0)] = 0,
                     limit: Annotated[int | None, Query(ge=0)] = None) -> Response:
    await _record(state, execution_id)
    if limit is not None and limit <= state.store.event_page:
        events = await state.store.list_events(execution_id, after_id=after_id, limit=limit)
        return JSONResponse([e.to_dict() for e in events])
    pages = state.store.iter_events(execution_id, after_id=after_id)
    first: list[Event] = await anext(pages, [])  # read before answering: a database error is still a clean 503
    return StreamingResponse(_json_array(first, pages, limit), media_type="application/json")


async def _json_array(first: list[Event], pages: AsyncGenerator[list[Event]], limit: int | None) -> AsyncIterator[str]:
    """A JSON array of events written a page at a time: a long log is never all in memory."""
    yield "["
    sent, page = 0, first
    try:
        while page:
            page = page if limit is None else page[:limit - sent]
            if page:
                yield ("," if sent else "") + ",".join(_encode(e.to_dict()) for e in page)
                sent += len(page)
            if limit is not None and sent >= limit:
                break
            page = await anext(pages, [])
    finally:
        await pages.aclose()
    yield "]"


# As JSONResponse encodes.
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


@router.post("/executions/{execution_id}/cancel", summary="Cancel an execution and its running children")
async def cancel(execution_id: str, state: State) -> dict[str, Any]:
    await _record(state, execution_id)
    return await state.core.cancel(execution_id)


@router.post("/events", summary="Report an event from outside (a call result or a cancellation)")
@router.post("/v2/events", include_in_schema=False)
async def post_event(body: Annotated[dict[str, Any], Body()], state: State) -> dict[str, Any]:
    execution_id = str(body.get("execution_id") or "")
    event_type = body.get("event_type") or body.get("type")
    if not execution_id or not event_type:
        raise InputError("execution_id and event_type are required")
    await _record(state, execution_id)
    if event_type == ev.EXECUTION_CANCELLED:
        return await state.core.cancel(execution_id, str((body.get("error") or {}).get("message") or "cancelled"))
    if event_type not in (ev.CALL_DONE, ev.CALL_ERROR):
        raise InputError(f"event_type {event_type!r}: only call.done, call.error and execution.cancelled "
                         "can be reported from outside")
    return {"accepted": await state.core.report(*_external_report(execution_id, event_type, body))}


def _external_report(execution_id: str, event_type: str, body: dict[str, Any]) -> tuple[LeasedCommand, Event]:
    meta = dict(body.get("meta") or {})
    command_id, attempt, worker = meta.get("command_id"), meta.get("attempt"), meta.get("worker")
    step = body.get("node_name")
    if not command_id or not isinstance(attempt, int) or not worker or not step:
        raise InputError("a call report needs node_name and meta.command_id, meta.attempt (int), meta.worker "
                         "(the leased command it reports)")
    error = body.get("error")
    if event_type == ev.CALL_ERROR and not isinstance(error, dict):
        error = {"kind": "error", "message": str(error or "failed"), "retryable": False}
    leased = LeasedCommand(str(command_id), execution_id, str(step), attempt, {}, str(worker))
    event = Event(execution_id, event_type, node_name=str(step),
                  status="completed" if event_type == ev.CALL_DONE else "failed",
                  result=body.get("result"), error=error if event_type == ev.CALL_ERROR else None, meta=meta)
    return leased, event


async def _record(state: ServerState, execution_id: str) -> ExecutionRecord:
    record = await state.store.get_execution(execution_id)
    if record is None:
        raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
    return record


def summary(record: ExecutionRecord) -> dict[str, Any]:
    return {"execution_id": record.execution_id, "path": record.path, "status": record.status,
            "parent_execution_id": record.parent_execution_id, "result": record.result, "error": record.error,
            "started_at": record.started_at, "ended_at": record.ended_at}
