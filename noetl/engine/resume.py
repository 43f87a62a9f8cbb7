"""What a resume runs again and what a rerun reuses, read from an execution's event log (pure).

- **Resume** continues an execution in place. :func:`resume_event` names the steps whose latest entry
  did not end well (failed without a handling arc, or never ended because the run was cancelled or
  its process died) and, for loops, the iterations of that entry that completed: the fold of
  ``execution.resumed`` puts those steps back in the queue, and entering a loop again runs only the
  iterations that did not complete.
- **Rerun from a step** starts a new execution at that step. :func:`reused_steps` lists the steps
  that completed in the original before the step was first entered, with their results and `set`
  writes; the new log records each as ``step.reused``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from noetl.engine import events as ev
from noetl.engine.aggregate import PREVIEW_ITEMS
from noetl.engine.events import Event

if TYPE_CHECKING:
    from noetl.dsl.model import Playbook

RESUMABLE_STATUSES = ("failed", "cancelled")


@dataclass(slots=True)
class _Entry:
    """The latest entry of one step in the log."""

    arc_input: dict[str, Any]
    exit: Event | None = None
    completed_iterations: dict[int, Any] = field(default_factory=dict)
    # A loop whose aggregate is by reference reads kept iterations back from their reports: only the
    # ones its preview shows travel in execution.resumed (the others as null), so it stays small.
    by_ref: bool = False


def resume_event(execution_id: str, events: Iterable[Event], *, reason: str = "resumed") -> Event:
    """The ``execution.resumed`` event that continues the execution whose log is ``events``."""
    entries: dict[str, _Entry] = {}
    waiting: dict[str, dict[str, Any]] = {}
    scheduled_by: dict[str, str] = {}  # step -> the step whose arc scheduled it: `result` in its input
    kept: dict[str, dict[int, Any]] = {}  # iterations an earlier resume kept, until the step is entered
    for event in events:
        name = event.node_name or ""
        if event.event_type == ev.WORKFLOW_INITIALIZED and event.meta.get("entry_step"):
            waiting.setdefault(str(event.meta["entry_step"]), dict(event.meta.get("entry_input") or {}))
        elif event.event_type == ev.EXECUTION_RESUMED:
            kept = {str(item["step"]): {int(i): r for i, r in (item.get("kept_iterations") or {}).items()}
                    for item in event.meta.get("steps") or []}
        elif event.event_type == ev.STEP_ENTER:
            waiting.pop(name, None)
            if event.meta.get("scheduled_by"):
                scheduled_by[name] = str(event.meta["scheduled_by"])
            entries[name] = _Entry(arc_input=dict((event.result or {}).get("arc_input") or {}),
                                   completed_iterations=kept.pop(name, {}),
                                   by_ref=bool((event.meta.get("loop") or {}).get("by_ref")))
        elif event.event_type == ev.CALL_DONE and name in entries and event.meta.get("loop_index") is not None:
            entry, index = entries[name], int(event.meta["loop_index"])
            entry.completed_iterations[index] = event.result if not entry.by_ref or index < PREVIEW_ITEMS else None
        elif event.event_type == ev.STEP_EXIT and name in entries:
            entries[name].exit = event
            for target, arc_input in event.meta.get("fire") or []:
                if target not in waiting:
                    waiting[target] = arc_input or {}
                    scheduled_by[target] = name
    steps = [
        {"step": name, "arc_input": entry.arc_input,
         "kept_iterations": {str(i): r for i, r in sorted(entry.completed_iterations.items())}}
        for name, entry in entries.items() if not _ended_well(entry.exit)
    ]
    return Event(execution_id, ev.EXECUTION_RESUMED, status="running",
                 meta={"reason": reason, "steps": steps, "waiting": waiting,
                       "scheduled_by": {name: scheduled_by[name] for name in
                                        [*(item["step"] for item in steps), *waiting] if name in scheduled_by}})


def _ended_well(exit_event: Event | None) -> bool:
    if exit_event is None:
        return False  # still running when the execution stopped
    return exit_event.status == "completed" or bool(exit_event.meta.get("handled"))


def reused_steps(events: Iterable[Event], from_step: str, playbook: Playbook) -> tuple[list[Event], dict[str, Any]]:
    """The ``step.reused`` events of a rerun from ``from_step`` and the arc input ``from_step`` had.

    Reused: steps that completed before ``from_step`` was first entered (all completed steps if it
    never ran), except ``from_step`` itself and the steps downstream of it, which run again.
    """
    downstream = reachable_from(playbook, from_step)
    exits: dict[str, Event] = {}
    arc_input: dict[str, Any] = {}
    source = ""
    for event in events:
        source = source or event.execution_id
        if event.event_type == ev.STEP_ENTER and event.node_name == from_step:
            arc_input = dict((event.result or {}).get("arc_input") or {})
            break
        if event.event_type in (ev.STEP_EXIT, ev.STEP_REUSED) and event.status == "completed":
            exits[event.node_name or ""] = event
    reused = [
        Event("", ev.STEP_REUSED, node_name=name, status="completed", result=exit_event.result,
              meta={"set": exit_event.meta.get("set") or {}, "source_execution_id": source,
                    "source_event_id": exit_event.event_id})
        for name, exit_event in exits.items() if name not in downstream
    ]
    return reused, arc_input


def reachable_from(playbook: Playbook, start: str) -> set[str]:
    """``start`` and every step an arc path leads to from it."""
    steps = playbook.step_map()
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in steps:
            continue
        seen.add(name)
        todo.extend(arc.step for arc in steps[name].next.arcs if arc.step)
    return seen
