"""Event records: the append-only log every execution is rebuilt from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PLAYBOOK_INITIALIZED = "playbook.initialized"
WORKFLOW_INITIALIZED = "workflow.initialized"
STEP_ENTER = "step.enter"
CALL_DONE = "call.done"
CALL_ERROR = "call.error"
STEP_EXIT = "step.exit"
LOOP_DONE = "loop.done"
WORKFLOW_COMPLETED = "workflow.completed"
WORKFLOW_FAILED = "workflow.failed"
PLAYBOOK_COMPLETED = "playbook.completed"
PLAYBOOK_FAILED = "playbook.failed"
EXECUTION_CANCELLED = "execution.cancelled"
EXECUTION_RESUMED = "execution.resumed"  # a failed, cancelled or abandoned execution continues
STEP_REUSED = "step.reused"  # a rerun takes a step's result from the execution it reruns

EVENT_TYPES = (
    PLAYBOOK_INITIALIZED,
    WORKFLOW_INITIALIZED,
    STEP_ENTER,
    CALL_DONE,
    CALL_ERROR,
    STEP_EXIT,
    LOOP_DONE,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    PLAYBOOK_COMPLETED,
    PLAYBOOK_FAILED,
    EXECUTION_CANCELLED,
    EXECUTION_RESUMED,
    STEP_REUSED,
)

TERMINAL_EVENT_TYPES = (PLAYBOOK_COMPLETED, PLAYBOOK_FAILED, EXECUTION_CANCELLED)
EXECUTION_STATUSES = ("running", "completed", "failed", "cancelled")  # what an execution's row says


@dataclass(slots=True)
class Event:
    """One event of an execution.

    ``event_id`` (monotonic per execution) and ``created_at`` (ISO 8601 UTC) are assigned by the
    runtime/store when the event is appended; the engine leaves them empty.
    """

    execution_id: str
    event_type: str
    node_name: str | None = None
    status: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    event_id: int = 0
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def own_copy(self) -> Event:
        """A copy with its own ``meta`` dict (``dataclasses.replace`` does the same, slower)."""
        return Event(self.execution_id, self.event_type, self.node_name, self.status, self.result, self.error,
                     dict(self.meta), self.event_id, self.created_at)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            execution_id=str(data["execution_id"]),
            event_type=data["event_type"],
            node_name=data.get("node_name"),
            status=data.get("status"),
            result=data.get("result"),
            error=data.get("error"),
            meta=dict(data.get("meta") or {}),
            event_id=int(data.get("event_id") or 0),
            created_at=data.get("created_at") or "",
        )
