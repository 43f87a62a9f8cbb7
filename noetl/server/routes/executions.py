"""Executions: submit, list, inspect, cancel; external events."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.errors import ErrorInfo, InputError, NotFoundError
from noetl.ids import parse_execution_id
from noetl.runtime.distributed import UnstorableReport, load_status
from noetl.runtime.execution import payload_from_workload
from noetl.server.auth import requires
from noetl.server.guard import ParsedBodyRoute
from noetl.server.routes.catalog import find_entry
from noetl.server.schemas import ExecuteRequest, ExternalEvent
from noetl.server.state import ServerState, State
from noetl.store.base import ExecutionRecord
from noetl.store.postgres.queue import MEMBERS, CommandQueue, LeasedCommand

router = APIRouter(tags=["executions"], route_class=ParsedBodyRoute)


@router.post("/execute", summary="Start an execution of a catalog playbook")
@router.post("/run/playbook", include_in_schema=False)
@router.post("/v2/execute", include_in_schema=False)
@requires("execute")
async def execute(body: ExecuteRequest, state: State) -> dict[str, Any]:
    entry = await find_entry(state, path=body.path, catalog_id=body.catalog_id, version=body.version)
    parent = None if body.parent_execution_id is None else \
        parse_execution_id(body.parent_execution_id, "parent_execution_id")
    if parent is not None and await state.store.get_execution(parent) is None:
        raise NotFoundError(f"parent execution {parent} not found")
    execution_id = await state.core.submit(
        playbook_text=entry.content, source=f"catalog://{entry.path}@{entry.version}", payload=body.payload or {},
        merge=body.merge, parent_execution_id=parent, strict=body.strict)
    return {"execution_id": execution_id, "status": "started", "path": entry.path, "version": entry.version}


@router.get("/executions", summary="Executions, newest first")
@requires("read")
async def list_executions(
    state: State, status: str | None = None, parent_execution_id: str | None = None,
    path: Annotated[str | None, Query(max_length=1000, description="a substring of the playbook path (any case)")] = None,
    since: Annotated[str | None, Query(max_length=64, description="started at or after this ISO date/time (UTC "
                                                                  "when it has no zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    if status is not None and status not in ev.EXECUTION_STATUSES:
        raise InputError(f"status: {status!r} is not one of {', '.join(ev.EXECUTION_STATUSES)}")
    records = await state.store.list_executions(status=status, parent_execution_id=parent_execution_id,
                                                path=path or None, started_since=since or None,
                                                limit=limit, offset=offset)
    return [summary(record) for record in records]


@router.get("/executions/{execution_id}", summary="One execution: its row and status document")
@requires("read")
async def get_execution(execution_id: str, state: State) -> dict[str, Any]:
    record = await _record(state, execution_id)
    doc = await load_status(state.store, execution_id)
    first = await state.store.list_events(execution_id, limit=1)
    payload = payload_from_workload(record.payload, first[0].result) \
        if first and first[0].event_type == ev.PLAYBOOK_INITIALIZED else record.payload
    return {**summary(record), **doc, "payload": payload}


@router.get("/executions/{execution_id}/status", summary="The status document")
@requires("read")
async def get_status(execution_id: str, state: State) -> dict[str, Any]:
    await _record(state, execution_id)
    return await load_status(state.store, execution_id)


@router.get("/executions/{execution_id}/state",
            summary="Its status and last event id only: cheap to poll while waiting for an execution to end")
@requires("read")
async def get_state(execution_id: str, state: State) -> dict[str, Any]:
    found = await state.store.get_execution_state(execution_id)
    if found is None:
        raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
    return {"execution_id": execution_id, "status": found.status, "last_event_id": found.last_event_id,
            "ended_at": found.ended_at}


@router.get("/executions/{execution_id}/events", summary="The execution's events in order")
@requires("read")
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


@router.get("/executions/{execution_id}/logs",
            summary="The execution's logs: what each call printed, in order (streamed while it runs)")
@requires("read")
async def get_logs(execution_id: str, state: State, step: str | None = None,
                   after_id: Annotated[int, Query(ge=0, description="Only lines of events after this one.")] = 0,
                   after_log_id: Annotated[int, Query(ge=0, description="Only streamed lines after this one.")] = 0,
                   events: Annotated[bool, Query(description="Include the lines events carry themselves "
                                                             "(false: only streamed lines).")] = True,
                   ) -> list[dict[str, Any]]:
    from noetl.engine.logs import log_lines, merged, streamed_lines
    from noetl.runtime.execution_steps import check_execution_step

    await _record(state, execution_id)
    if step is not None:
        await check_execution_step(state.store, execution_id, step, "step")
    carried = []
    if events:
        async for page in state.store.iter_events(execution_id, after_id=after_id):
            carried.extend(log_lines(page, step))
    stored = streamed_lines(await state.store.list_logs(execution_id, after_id=after_log_id, step=step))
    return [line.to_dict() for line in merged(carried, stored)]


@router.post("/executions/{execution_id}/cancel", summary="Cancel an execution and its running children")
@requires("execute")
async def cancel(execution_id: str, state: State) -> dict[str, Any]:
    await _record(state, execution_id)
    return await state.core.cancel(execution_id)


@router.post("/events", summary="An event from outside: a call report, a cancellation, a start")
@router.post("/v2/events", include_in_schema=False)
@requires("execute")
async def post_event(body: ExternalEvent, state: State) -> dict[str, Any]:
    event_type = body.kind()
    if event_type == WORKFLOW_START:
        started = await _start_from_event(body, state)
        generated = await CommandQueue(state.store).count(started["execution_id"]) if started["accepted"] else 0
        return {**started, "status": "processed", "execution_status": started["status"],
                "commands_generated": generated}
    if body.execution_id is None or not event_type:
        raise InputError("execution_id and event_type are required")
    execution_id = parse_execution_id(body.execution_id)
    await _record(state, execution_id)
    if event_type == ev.EXECUTION_CANCELLED:
        reason = body.error.get("message") if isinstance(body.error, dict) else body.error
        return await state.core.cancel(execution_id, str(reason or "cancelled by request"))
    if event_type not in (ev.CALL_DONE, ev.CALL_ERROR):
        raise InputError(f"event_type {event_type!r}: only {ev.CALL_DONE}, {ev.CALL_ERROR}, "
                         f"{ev.EXECUTION_CANCELLED} and {WORKFLOW_START} can be posted")
    leased, event = await _external_report(state, execution_id, event_type, body)
    queue = CommandQueue(state.store)
    before = await queue.count(execution_id)
    try:
        accepted = await state.core.report(leased, event)
    except UnstorableReport as exc:
        raise InputError(str(exc)) from exc
    return {"status": "processed", "accepted": accepted, "execution_id": execution_id,
            "commands_generated": await queue.count(execution_id) - before}


WORKFLOW_START = "workflow.start"


async def _start_from_event(body: ExternalEvent, state: ServerState) -> dict[str, Any]:
    """Seed 002's way to start an execution. Posting the same start again (same execution_id)
    starts nothing and says so."""
    if not body.path and not body.catalog_id:
        raise InputError(f"{WORKFLOW_START}: path (or catalog_id) of a registered playbook is required")
    execution_id = None if body.execution_id is None else parse_execution_id(body.execution_id)
    if execution_id is not None and (record := await state.store.get_execution(execution_id)) is not None:
        return {"accepted": False, "execution_id": execution_id, "status": record.status}
    entry = await find_entry(state, path=body.path, catalog_id=body.catalog_id, version=body.version)
    execution_id = await state.core.submit(
        playbook_text=entry.content, source=f"catalog://{entry.path}@{entry.version}", payload=body.payload or {},
        execution_id=execution_id)
    return {"accepted": True, "execution_id": execution_id, "status": "started", "path": entry.path,
            "version": entry.version}


async def _external_report(state: ServerState, execution_id: str, event_type: str,
                           body: ExternalEvent) -> tuple[LeasedCommand, Event]:
    """The report as a worker would make it, checked against the command it names: the step and
    the loop index come from the stored command, so a report cannot be filed under another step."""
    meta = dict(body.meta or {})
    command_id, attempt, worker = meta.get("command_id"), meta.get("attempt"), meta.get("worker")
    if not isinstance(command_id, str) or not command_id or not isinstance(worker, str) or not worker \
            or not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise InputError("a call report needs meta.command_id (string), meta.attempt (integer, from 1) and "
                         "meta.worker (string): the lease it reports on")
    command = await CommandQueue(state.store).get_for(execution_id, command_id)
    if command is None:
        raise NotFoundError(f"execution {execution_id} has no command {command_id!r}")
    if MEMBERS in command.payload:  # a worker's batch row, re-queued after a crash
        raise InputError(f"command {command_id} holds several loop iterations of step {command.step!r}: "
                         "NoETL's workers run it (docs/architecture.md, batch rows)")
    if body.node_name is not None and body.node_name != command.step:
        raise InputError(f"node_name {body.node_name!r}: command {command_id} runs step {command.step!r}")
    loop_index = command.payload.get("loop_index")
    if meta.get("loop_index", loop_index) != loop_index:
        raise InputError(f"meta.loop_index {meta['loop_index']!r}: command {command_id} runs iteration {loop_index!r}")
    if loop_index is not None:
        meta["loop_index"] = loop_index
    leased = LeasedCommand(command_id, execution_id, command.step, attempt, {}, worker)
    if event_type == ev.CALL_DONE:
        event = Event(execution_id, event_type, node_name=command.step, status="completed", result=body.result,
                      meta=meta)
    else:
        error = body.error if isinstance(body.error, dict) else \
            ErrorInfo("error", str(body.error or "failed"), False).to_dict()
        event = Event(execution_id, event_type, node_name=command.step, status="failed", error=error, meta=meta)
    return leased, event


async def _record(state: ServerState, execution_id: str) -> ExecutionRecord:
    record = await state.store.get_execution(execution_id)
    if record is None:
        raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
    return record


def summary(record: ExecutionRecord) -> dict[str, Any]:
    return {"execution_id": record.execution_id, "path": record.path, "playbook_path": record.path,
            "status": record.status,
            "parent_execution_id": record.parent_execution_id, "result": record.result, "error": record.error,
            "started_at": record.started_at, "ended_at": record.ended_at}
