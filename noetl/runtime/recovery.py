"""Rerun and resume of local executions (SPEC section 18).

- ``rerun`` starts a **new** execution of the same playbook text and payload (payload overrides on
  top); from a step, the steps that completed before it in the original are reused (``step.reused``)
  and the run starts at the step.
- ``resume`` continues a failed, cancelled or abandoned execution **in place**
  (``execution.resumed``): failed steps and failed loop iterations run again, completed ones are kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noetl.dsl.parse import load_playbook_text
from noetl.engine.resume import RESUMABLE_STATUSES, reachable_from, reused_steps
from noetl.errors import InputError
from noetl.runtime.execution import started_payload
from noetl.runtime.execution_steps import load_execution, unknown_step
from noetl.runtime.local import EventListener, LocalRuntime
from noetl.runtime.owner import record_abandoned
from noetl.runtime.request import RunRequest, StartOptions
from noetl.runtime.sealing import unsealed_log
from noetl.store.base import ExecutionRecord, Store

if TYPE_CHECKING:
    from noetl.dsl.model import Playbook


def check_from_step(playbook: Playbook, from_step: str, field: str) -> None:
    """The step a rerun starts at must be one the entry step can reach. ``field`` is how the caller
    named it (the CLI's ``--from``, the API's ``from_step``), so the error speaks the caller's words."""
    problem = unknown_step(playbook, from_step, field)
    if problem:
        raise InputError(problem)
    if from_step not in reachable_from(playbook, playbook.entry_step):
        raise InputError(f"{field} {from_step!r}: not reachable from the entry step {playbook.entry_step!r}")


def check_resumable(record: ExecutionRecord) -> None:
    if record.status not in RESUMABLE_STATUSES:
        raise InputError(f"execution {record.execution_id} is {record.status}: only a failed, cancelled "
                         f"or abandoned execution can be resumed")


async def rerun_plan(store: Store, execution_id: str, *, from_step: str | None = None,
                     payload: dict[str, Any] | None = None, from_field: str = "--from") -> tuple[ExecutionRecord, dict[str, Any], StartOptions]:
    """What a rerun runs (the original's row), with which payload and how it starts; checked,
    nothing stored yet. Shared by the local runtime and the server."""
    record, playbook = await load_execution(store, execution_id)
    options = StartOptions(meta={"rerun_of": execution_id})
    if from_step is not None:
        check_from_step(playbook, from_step, from_field)
    # The whole log to reuse steps from; otherwise its playbook.initialized, whose workload holds the payload.
    log, options.secrets = unsealed_log(await store.list_events(execution_id, limit=None if from_step else 1))
    if from_step is not None:
        options.meta["rerun_from"] = from_step
        options.reused, options.entry_input = reused_steps(log, from_step, playbook)
        options.entry_step = from_step
    return record, {**started_payload(record.payload, log[0] if log else None), **(payload or {})}, options


async def rerun_request(store: Store, execution_id: str, *, from_step: str | None = None,
                        payload: dict[str, Any] | None = None) -> RunRequest:
    record, merged, options = await rerun_plan(store, execution_id, from_step=from_step, payload=payload)
    return RunRequest(playbook=load_playbook_text(record.playbook, f"execution {execution_id}").require(),
                      playbook_text=record.playbook, payload=merged, meta=options.meta,
                      entry_step=options.entry_step, entry_input=options.entry_input, reused=options.reused,
                      secrets=options.secrets)


async def resume_request(store: Store, execution_id: str) -> RunRequest:
    await record_abandoned(store)
    record, playbook = await load_execution(store, execution_id)
    check_resumable(record)
    log = await store.list_events(execution_id)
    return RunRequest(playbook=playbook, playbook_text=record.playbook,
                      payload=started_payload(record.payload, log[0] if log else None),
                      parent_execution_id=record.parent_execution_id, execution_id=execution_id, resume=log)


async def run_request(store: Store, request: RunRequest, listener: EventListener | None = None) -> dict[str, Any]:
    """Run a rerun or resume request to the end in this process; return the status document."""
    try:
        return await LocalRuntime(store, listener=listener).run(request)
    finally:
        from noetl.tools.base import shutdown_tools

        await shutdown_tools()
