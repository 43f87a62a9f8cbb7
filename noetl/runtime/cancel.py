"""Cancelling a local execution from another process.

The cancel is recorded as an ``execution.cancelled`` event; the process running the execution
watches its execution row and stops its in-flight work when it sees the cancel.
"""

from __future__ import annotations

from typing import Any

from noetl.clock import iso, utc_now
from noetl.errors import ExecutionEnded, NotFoundError
from noetl.runtime.execution import cancel_event
from noetl.store.base import Store


async def cancel_local(store: Store, execution_id: str, reason: str = "cancelled by request") -> dict[str, Any]:
    record = await store.get_execution(execution_id)
    if record is None:
        raise NotFoundError(f"execution {execution_id} not found")
    if record.status != "running":
        return {"execution_id": execution_id, "status": record.status, "cancelled": False}
    now = iso(utc_now())
    event = cancel_event(execution_id, reason, created_at=now)
    try:
        await store.append_events(execution_id, [event],
                                  update={"status": "cancelled", "error": reason, "ended_at": now})
    except ExecutionEnded as ended:  # it ended since it was read: the cancel came too late
        return {"execution_id": execution_id, "status": ended.status, "cancelled": False}
    children = await store.list_executions(parent_execution_id=execution_id, status="running")
    for child in children:
        await cancel_local(store, child.execution_id, f"parent {execution_id} cancelled")
    return {"execution_id": execution_id, "status": "cancelled", "cancelled": True}
