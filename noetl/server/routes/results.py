"""A step's full result, with references resolved (SPEC section 19)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from noetl.results.read import step_result_json
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
