"""A step's full result, with references resolved (SPEC section 19)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from noetl.errors import InputError
from noetl.results.read import step_result_json
from noetl.results.storage import DB_PREFIX, storage_for
from noetl.server.auth import requires
from noetl.server.state import State

router = APIRouter(tags=["executions"])


@router.get("/executions/{execution_id}/results/{step}",
            summary="A step's result in full (`?index=` for one iteration of a loop)")
@requires("read")
async def get_step_result(execution_id: str, step: str, state: State, index: int | None = None) -> Response:
    # A result stored by reference is sent as stored, without decoding it first.
    body = await step_result_json(state.store, execution_id, step, index=index)
    return Response(content=body, media_type="application/json")


@router.get("/results", summary="A result stored by reference in the result table, by its uri "
            "(`noetl://result/...`), for workers without database access")
@requires("read")
async def get_result_by_uri(uri: str, state: State) -> Response:
    # Only the result table: a `file://` uri names a file on whichever machine stored it, and the
    # server must never read its own files for a caller.
    if not uri.startswith(DB_PREFIX):
        raise InputError(f"only {DB_PREFIX}... results can be read through the server, not {uri.split(':', 1)[0]}:")
    return Response(content=await storage_for(state.store).fetch_bytes(uri), media_type="application/json")
