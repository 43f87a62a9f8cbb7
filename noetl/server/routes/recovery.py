"""Rerun of an execution on the workers: a new execution of the same playbook version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from noetl.ids import parse_execution_id
from noetl.runtime.recovery import rerun_plan
from noetl.server.auth import requires
from noetl.server.guard import ParsedBodyRoute
from noetl.server.state import State

router = APIRouter(tags=["executions"], route_class=ParsedBodyRoute)


class RerunRequest(BaseModel):
    # A misspelt field is refused: ignored, it would start a full rerun instead of the one asked for.
    model_config = ConfigDict(extra="forbid")

    # `from` too, as `noetl rerun --from` and the schedule backfill body spell it.
    from_step: str | None = Field(default=None, validation_alias=AliasChoices("from_step", "from"))
    payload: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_spelling_of_from(cls, body: Any) -> Any:
        # Both given, one would be dropped silently: the rerun could start where the client did not ask.
        if isinstance(body, dict) and "from" in body and "from_step" in body:
            raise ValueError("give the step to rerun from as from or as from_step, not both")
        return body


@router.post("/executions/{execution_id}/rerun", summary="Start a new execution of the same playbook version")
@requires("execute")
async def rerun(execution_id: str, state: State, body: RerunRequest | None = None) -> dict[str, Any]:
    original = parse_execution_id(execution_id, "execution_id")
    body = body or RerunRequest()
    record, payload, options = await rerun_plan(state.store, original, from_step=body.from_step,
                                                payload=body.payload, from_field="from_step")
    new_id = await state.core.submit(playbook_text=record.playbook, source=f"execution {original}",
                                     payload=payload, start=options)
    return {"execution_id": new_id, "status": "started", "rerun_of": original, "from_step": body.from_step}


@router.post("/executions/{execution_id}/resume",
             summary="Continue a failed or cancelled execution in place (its failed steps and iterations run again)")
@requires("execute")
async def resume(execution_id: str, state: State) -> dict[str, Any]:
    return await state.core.resume(parse_execution_id(execution_id, "execution_id"))
