"""The status document (SPEC section 10), folded from events only.

The same fold runs live (incrementally, as events are appended) and on replay (from the stored log),
so both give the same document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from noetl.engine import events as ev
from noetl.engine.events import Event


class StatusFolder:
    """Builds the status document one event at a time."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {
            "execution_id": None, "path": None, "status": "running", "completed": False, "failed": False,
            "current_step": None, "completed_steps": [], "steps": {}, "result": None, "error": None,
            "parent_execution_id": None, "started_at": None, "ended_at": None, "duration_seconds": None,
            "warnings": [],
        }
        self._warned: set[tuple[Any, ...]] = set()
        self._running: list[str] = []

    def apply(self, event: Event) -> None:
        doc = self.doc
        kind = event.event_type
        if event.meta.get("warnings"):
            self._warn(event.meta["warnings"])
        if kind == ev.PLAYBOOK_INITIALIZED:
            doc["execution_id"] = event.execution_id
            doc["path"] = event.meta.get("path")
            doc["parent_execution_id"] = event.meta.get("parent_execution_id")
            doc["started_at"] = event.created_at
        elif kind == ev.STEP_ENTER:
            name = event.node_name or ""
            doc["steps"][name] = {"status": "running", "result": None}
            self._running.append(name)
            doc["current_step"] = name
        elif kind == ev.STEP_EXIT:
            self._step_exit(event)
        elif kind in (ev.PLAYBOOK_COMPLETED, ev.PLAYBOOK_FAILED, ev.EXECUTION_CANCELLED):
            self._end(event)
        elif kind == ev.EXECUTION_RESUMED:
            self._resumed()
        elif kind == ev.STEP_REUSED:
            name = event.node_name or ""
            doc["steps"][name] = {"status": "completed", "result": event.result, "reused": True}
            doc["completed_steps"].append(name)

    def _resumed(self) -> None:
        doc = self.doc
        doc.update(status="running", completed=False, failed=False, result=None, error=None,
                   current_step=None, ended_at=None, duration_seconds=None)
        self._running.clear()

    def _warn(self, warnings: list[dict[str, Any]]) -> None:
        """Template warnings, once each (a loop's iterations repeat the same one)."""
        for warning in warnings:
            key = (warning.get("step"), warning.get("field"), warning.get("message"))
            if key not in self._warned:
                self._warned.add(key)
                self.doc["warnings"].append({"step": warning.get("step"), "field": warning.get("field"),
                                             "message": warning.get("message")})

    def _step_exit(self, event: Event) -> None:
        name = event.node_name or ""
        entry: dict[str, Any] = {"status": event.status, "result": event.result}
        if event.error:
            entry["error"] = event.error
        self.doc["steps"][name] = entry
        if event.status == "completed":
            self.doc["completed_steps"].append(name)
        if name in self._running:
            self._running.remove(name)
        self.doc["current_step"] = self._running[-1] if self._running else None

    def _end(self, event: Event) -> None:
        doc = self.doc
        kind = event.event_type
        doc["status"] = {ev.PLAYBOOK_COMPLETED: "completed", ev.PLAYBOOK_FAILED: "failed"}.get(kind, "cancelled")
        doc["completed"] = kind == ev.PLAYBOOK_COMPLETED
        doc["failed"] = kind != ev.PLAYBOOK_COMPLETED
        doc["result"] = event.result if kind == ev.PLAYBOOK_COMPLETED else None
        doc["error"] = (event.error or {}).get("message") if event.error else None
        doc["current_step"] = None
        for name in self._running:  # stopped with the execution (cancelled, or its process died): not running
            doc["steps"][name]["status"] = "cancelled"
        self._running.clear()
        doc["ended_at"] = event.created_at
        doc["duration_seconds"] = _duration(doc["started_at"], event.created_at)


def _duration(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 6)
    except ValueError:
        return None


def status_document(events: list[Event]) -> dict[str, Any]:
    folder = StatusFolder()
    for event in events:
        folder.apply(event)
    return folder.doc
