"""Completion triggers: "when an execution of PATH completes (or fails), start RUN_PATH" (SPEC
section 18). A trigger fires once per finished execution: the store records each (trigger,
source execution) pair under a unique key before the new execution starts, so restarts and two
servers never fire it twice."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from noetl.errors import InputError, NotFoundError
from noetl.ids import new_execution_id
from noetl.store.base import ExecutionRecord, Store

if TYPE_CHECKING:
    # Built only by checked_trigger (a command, not a run): see noetl.store.records.
    from noetl.store.records import TriggerRecord

TRIGGER_STATUSES = ("completed", "failed")
MAX_TRIGGER_CHAIN = 16  # executions started by triggers one after another, as deep as playbook calls nest
log = logging.getLogger("noetl.triggers")

# Starts ``trigger.run_path`` as ``execution_id`` with ``payload``.
Starter = Callable[["TriggerRecord", str, dict[str, Any]], Awaitable[None]]


def checked_trigger(*, on_path: str, on: str, run: str, name: str | None = None,
                    where: str | None = None) -> TriggerRecord:
    """A trigger record whose every field is valid. Errors name the command line's options when
    ``where`` is None, else the body's field names prefixed with ``where`` ("" for the API)."""
    def field(key: str) -> str:
        return "--" + key.replace("_", "-") if where is None else f"{where}{key}"

    if on not in TRIGGER_STATUSES:
        raise InputError(f"{field('on')}: expected one of {', '.join(TRIGGER_STATUSES)}, got {on!r}")
    if not on_path or not on_path.strip():
        raise InputError(f"{field('on_path')}: a trigger needs the path it watches")
    if not run or not run.strip():
        raise InputError(f"{field('run')}: a trigger needs the catalog path it starts")
    on_path, run = on_path.removeprefix("catalog://"), run.removeprefix("catalog://")
    if on_path == run:
        raise InputError(f"{field('run')}: a trigger cannot start the path it watches ({run!r} would loop)")
    chosen = name or f"{on_path}:{on}:{run}"
    if "/" in chosen and name:
        raise InputError(f"{field('name')}: a trigger name has no '/', got {name!r}")
    from noetl.store.records import TriggerRecord

    return TriggerRecord(name=chosen.replace("/", "."), on_path=on_path, on_status=on, run_path=run)


def trigger_view(trigger: TriggerRecord) -> dict[str, Any]:
    return {"name": trigger.name, "on_path": trigger.on_path, "on": trigger.on_status, "run": trigger.run_path,
            "created_at": trigger.created_at}


def trigger_payload(source: ExecutionRecord) -> dict[str, Any]:
    """The payload a fired trigger's execution starts with."""
    return {"trigger": {"execution_id": source.execution_id, "path": source.path, "status": source.status,
                        "result": source.result}}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def matches(trigger: TriggerRecord, source: ExecutionRecord) -> bool:
    """Does ``source`` fire ``trigger``? Only executions that ended after the trigger was added do."""
    if (source.path, source.status) != (trigger.on_path, trigger.on_status) or not source.ended_at:
        return False
    return not trigger.created_at or _instant(source.ended_at) >= _instant(trigger.created_at)


async def fire(store: Store, trigger: TriggerRecord, source: ExecutionRecord, start: Starter) -> str | None:
    """Start the trigger's execution for ``source`` unless it fired for it before, or it would
    close a cycle of triggers (A starts B, B starts A: executions without end); its id or None."""
    chain = await _trigger_chain(store, source)
    if trigger.run_path in chain or len(chain) >= MAX_TRIGGER_CHAIN:
        log.warning("trigger %s not fired for execution %s: trigger cycle: %s", trigger.name,
                    source.execution_id, " -> ".join([*reversed(chain), trigger.run_path]))
        return None
    execution_id = new_execution_id()
    if not await store.claim_trigger_fire(trigger.name, source.execution_id, execution_id):
        return None
    await start(trigger, execution_id, trigger_payload(source))
    return execution_id


async def _trigger_chain(store: Store, source: ExecutionRecord) -> list[str]:
    """The paths of ``source`` and of the executions whose triggers started it, newest first (a
    fired execution's payload names its source: see :func:`trigger_payload`)."""
    chain, current = [source.path], source
    while len(chain) < MAX_TRIGGER_CHAIN:
        origin = current.payload.get("trigger") if isinstance(current.payload, dict) else None
        origin_id = origin.get("execution_id") if isinstance(origin, dict) else None
        found = await store.get_execution(str(origin_id)) if str(origin_id).isdigit() else None
        if found is None:
            break
        chain.append(found.path)
        current = found
    return chain


async def fire_matching(store: Store, source: ExecutionRecord, start: Starter) -> list[str]:
    """Fire every trigger ``source`` matches (the local runtime calls this when a run ends)."""
    started = []
    for trigger in await store.list_triggers():
        if matches(trigger, source):
            execution_id = await fire(store, trigger, source, start)
            if execution_id:
                started.append(execution_id)
    return started


async def delete(store: Store, name: str) -> None:
    if not await store.delete_trigger(name):
        raise NotFoundError(f"no trigger named {name!r}")
