"""How a command's Outcome becomes the ``call.done`` / ``call.error`` event the engine handles.

Shared by the local runtime and the distributed workers, so both record identical events.
"""

from __future__ import annotations

from typing import Any

from noetl.engine import events as ev
from noetl.engine.commands import Command
from noetl.engine.events import Event
from noetl.errors import ErrorInfo
from noetl.runtime.runner import Outcome


def outcome_event(command: Command, outcome: Outcome, *, worker: str, attempt: int | None = None) -> Event:
    """The report of one command run. ``attempt`` is the lease attempt on the distributed runtime
    (each re-delivery counts); the local runtime counts the runner's attempts instead."""
    meta: dict[str, Any] = {"command_id": command.command_id,
                            "attempt": outcome.attempts if attempt is None else attempt,
                            "duration": round(outcome.duration, 6), "worker": worker}
    if command.loop_index is not None:
        meta["loop_index"] = command.loop_index
    if outcome.ctx_set:
        meta["set"] = dict(outcome.ctx_set)
    if outcome.logs:
        meta["logs"] = outcome.logs
    if outcome.logs_streamed:
        meta["logs_streamed"] = True  # the store's logs hold the call's lines: readers take them there
    if outcome.tasks or outcome.result_task:
        meta["tasks"] = dict(outcome.tasks)
        if outcome.result_task:
            meta["result_task"] = outcome.result_task
    if outcome.names:
        meta["names"] = dict(outcome.names)
    if outcome.warnings:
        meta["warnings"] = outcome.warnings
    if outcome.ok:
        return Event(command.execution_id, ev.CALL_DONE, node_name=command.step, status="completed",
                     result=outcome.result, meta=meta)
    return Event(command.execution_id, ev.CALL_ERROR, node_name=command.step, status="failed",
                 error=outcome.error, meta=meta)


def crash_outcome(exc: Exception) -> Outcome:
    """A bug in a tool must fail the step, never the runtime."""
    return Outcome(ok=False, error=ErrorInfo.from_exception(exc).to_dict())


def unstorable_outcome_event(event: Event, exc: Exception) -> Event:
    """The report that replaces one whose result or error could not be stored (not JSON, e.g. a
    NaN): the call fails with the reason, keeping the report's meta (command id, attempt, worker)."""
    storable = ("command_id", "attempt", "duration", "worker", "loop_index", "warnings", "logs_streamed")
    meta: dict[str, Any] = {key: event.meta[key] for key in storable if key in event.meta}
    return Event(event.execution_id, ev.CALL_ERROR, node_name=event.node_name, status="failed",
                 error=ErrorInfo("unstorable_result", str(exc), False).to_dict(), meta=meta)
