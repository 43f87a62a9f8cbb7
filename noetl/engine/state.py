"""Execution state, folded from events by :func:`apply` (the same fold live and on replay)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from noetl.engine import events as ev
from noetl.engine.aggregate import (
    AGGREGATE_MAX_BYTES,
    PREVIEW_ITEMS,
    AggregateByRef,
    json_size,
    looks_like_error,
)
from noetl.engine.cursor import CursorRun, fold_frame_report
from noetl.engine.events import Event


@dataclass(slots=True, eq=False, repr=False)  # state that changes as it runs: compared and shown by identity
class LoopRun:
    """One entry of a loop step: its items and what its iterations reported (facts only: which
    iterations are out at a time is the decider's window, see ``noetl.engine.decide.issued_count``)."""

    items: list[Any]
    max_in_flight: int
    results: list[Any] = field(default_factory=list)
    success: int = 0
    failed: int = 0
    kept: set[int] = field(default_factory=set)  # iterations a resume took over from the failed entry
    # The iterations this entry runs, in issue order: every index but the kept ones.
    order: Sequence[int] = range(0)
    reported: set[int] = field(default_factory=set)
    # More iterations than the step keeps inline (step.enter says so), or results past
    # ``max_bytes`` of JSON: the results are not held here but read back from the iterations'
    # reports; only a preview and the first failure are kept.
    by_ref: AggregateByRef | None = None
    max_bytes: int = AGGREGATE_MAX_BYTES
    inline_bytes: int = 0

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def finished(self) -> bool:
        return self.success + self.failed == self.total

    def record(self, index: int, value: Any, ok: bool) -> None:
        if self.by_ref is None:
            self.results[index] = value
            self.inline_bytes += json_size(value)
            if self.inline_bytes > self.max_bytes:
                self._to_reference()
        else:
            self.by_ref.record(index, value, ok)
        if ok:
            self.success += 1
        else:
            self.failed += 1

    def _to_reference(self) -> None:
        """The results seen so far outgrew ``max_bytes``: from here on they are read back by reference."""
        by_ref = AggregateByRef()
        for index, value in enumerate(self.results[:PREVIEW_ITEMS]):
            if index in self.reported or index in self.kept:
                by_ref.head[index] = value
        first = self.first_error_index()
        if first is not None:
            by_ref.first_error, by_ref.first_error_index = self.results[first], first
        self.by_ref, self.results = by_ref, []

    def first_error_index(self) -> int | None:
        return next((i for i, r in enumerate(self.results) if looks_like_error(r)), None)

    def aggregate(self, *, execution_id: str, step: str, entry: int) -> dict[str, Any]:
        stats = {"total": self.total, "success": self.success, "failed": self.failed}
        if self.by_ref is not None:
            return {"results": self.by_ref.ref(execution_id, step, entry, self.total), "stats": stats}
        return {"results": list(self.results), "stats": stats}

    def first_error(self) -> Any:
        if self.by_ref is not None:
            return self.by_ref.first_error
        return next((r for r in self.results if looks_like_error(r)), None)


@dataclass(slots=True, eq=False, repr=False)  # state that changes as it runs: compared and shown by identity
class StepRun:
    """One entered step of an execution: its input, its loop or cursor, and what it reported."""

    name: str
    entry: int
    input: dict[str, Any]
    arc_input: dict[str, Any]
    loop: LoopRun | None = None
    cursor: CursorRun | None = None  # a cursor loop (frames claimed as they go) instead of `loop`
    result: Any = None
    error: dict[str, Any] | None = None
    done: bool = False  # the tool (or every iteration) has reported
    tasks: dict[str, Any] = field(default_factory=dict)  # a pipeline's named task results (meta.tasks)
    names: dict[str, Any] = field(default_factory=dict)  # bare keys of task-level `set` (meta.names)
    scheduled_by: str | None = None  # the step whose arc scheduled this one: `result` in its input


@dataclass(slots=True, eq=False, repr=False)  # state that changes as it runs: compared and shown by identity
class ExecutionState:
    """What the engine knows of one execution, folded from its events (``noetl.engine.state.fold``)."""

    execution_id: str = ""
    path: str = ""
    parent_execution_id: str | None = None
    strict: bool = False
    workload: dict[str, Any] = field(default_factory=dict)
    ctx: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    task_results: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> named task results
    step_status: dict[str, str] = field(default_factory=dict)
    completed_steps: list[str] = field(default_factory=list)
    running: dict[str, StepRun] = field(default_factory=dict)
    waiting: dict[str, dict[str, Any]] = field(default_factory=dict)  # target -> arc input
    scheduled_by: dict[str, str] = field(default_factory=dict)  # waiting target -> the step whose arc fired it
    entries: dict[str, int] = field(default_factory=dict)
    last_completed: str | None = None
    failed: bool = False
    error: str | None = None
    status: str = "running"
    result: Any = None
    finished: bool = False
    # Loop iterations that completed before a resume, by step: kept when the step is entered again.
    resumed_iterations: dict[str, dict[int, Any]] = field(default_factory=dict)


def set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    """``a.b.c = value`` inside nested dicts, creating levels as needed."""
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def apply_set(state: ExecutionState, updates: dict[str, Any] | None) -> None:
    for key, value in (updates or {}).items():
        set_path(state.ctx, key, value)


def apply(state: ExecutionState, event: Event) -> ExecutionState:
    """Fold one event into the state. Exhaustive: an unknown event type raises."""
    handler = _HANDLERS.get(event.event_type)
    if handler is None:
        raise ValueError(f"unknown event type {event.event_type!r}")
    handler(state, event)
    return state


def fold(events: list[Event]) -> ExecutionState:
    state = ExecutionState()
    for event in events:
        apply(state, event)
    return state


def _playbook_initialized(state: ExecutionState, event: Event) -> None:
    state.execution_id = event.execution_id
    state.path = event.meta.get("path", "")
    state.parent_execution_id = event.meta.get("parent_execution_id")
    state.strict = bool(event.meta.get("strict"))
    state.workload = dict(event.result or {})


def _workflow_initialized(state: ExecutionState, event: Event) -> None:
    entry = event.meta.get("entry_step")
    if entry:
        state.waiting[entry] = dict(event.meta.get("entry_input") or {})


def _step_enter(state: ExecutionState, event: Event) -> None:
    name = event.node_name or ""
    data = event.result or {}
    state.waiting.pop(name, None)
    state.scheduled_by.pop(name, None)
    entry = int(event.meta.get("entry", state.entries.get(name, 0) + 1))
    state.entries[name] = entry
    run = StepRun(name=name, entry=entry, input=data.get("input") or {}, arc_input=data.get("arc_input") or {},
                  scheduled_by=event.meta.get("scheduled_by"))
    loop = event.meta.get("loop")
    if loop is not None:
        items = list(data.get("items") or [])
        by_ref = AggregateByRef() if loop.get("by_ref") else None
        run.loop = LoopRun(items=items, max_in_flight=int(loop.get("max_in_flight", 1)),
                           results=[] if by_ref else [None] * len(items), by_ref=by_ref,
                           max_bytes=int(loop.get("aggregate_max_bytes", AGGREGATE_MAX_BYTES)))
        _keep_resumed_iterations(state, run)
    cursor = event.meta.get("cursor")
    if cursor is not None:
        run.cursor = CursorRun(max_in_flight=int(cursor.get("max_in_flight", 1)),
                               inline_max_items=cursor.get("inline_max_items"))
    state.running[name] = run
    state.step_status[name] = "running"


def _keep_resumed_iterations(state: ExecutionState, run: StepRun) -> None:
    loop = run.loop
    assert loop is not None
    for index, result in state.resumed_iterations.pop(run.name, {}).items():
        if 0 <= index < loop.total:
            loop.kept.add(index)
            loop.record(index, result, ok=True)
    loop.order = [i for i in range(loop.total) if i not in loop.kept] if loop.kept else range(loop.total)
    if loop.finished:
        run.done = True


def _call_reported(state: ExecutionState, event: Event) -> None:
    run = state.running.get(event.node_name or "")
    if run is None or run.done:
        return  # a late duplicate report: the step already finished
    ok = event.event_type == ev.CALL_DONE
    apply_set(state, event.meta.get("set"))
    index = event.meta.get("loop_index")
    if run.cursor is not None:
        fold_frame_report(run.cursor, event)  # the decider ends the loop once every frame issued reported
        return
    if run.loop is None:
        run.result, run.error, run.done = (event.result if ok else None), (None if ok else event.error), True
        run.tasks, run.names = _task_results(event, run.result), dict(event.meta.get("names") or {})
        return
    loop = run.loop
    if not isinstance(index, int) or not 0 <= index < loop.total or index in loop.reported or index in loop.kept:
        return  # a duplicate report (at-least-once delivery), or one this entry never issued
    loop.reported.add(index)
    loop.record(index, event.result if ok else event.error, ok)
    if loop.finished:
        run.done = True


def _task_results(event: Event, result: Any) -> dict[str, Any]:
    """A pipeline's named task results; the task whose result is the step's is named, not repeated."""
    tasks = dict(event.meta.get("tasks") or {})
    if event.meta.get("result_task"):
        tasks[str(event.meta["result_task"])] = result
    return tasks


def _loop_done(state: ExecutionState, event: Event) -> None:
    run = state.running.get(event.node_name or "")
    if run is not None:
        run.done = True


def _step_exit(state: ExecutionState, event: Event) -> None:
    name = event.node_name or ""
    run = state.running.pop(name, None)
    apply_set(state, event.meta.get("set"))
    if run is not None and run.tasks:
        state.task_results[name] = run.tasks
    else:
        state.task_results.pop(name, None)
    if event.status == "completed":
        state.results[name] = event.result
        state.step_status[name] = "completed"
        state.completed_steps.append(name)
        state.last_completed = name
    else:
        state.step_status[name] = "failed"
        if event.result is not None:
            state.results[name] = event.result  # a loop aggregate stays inspectable
        if not event.meta.get("handled"):
            state.failed = True
            state.error = state.error or (event.error or {}).get("message")
    for target, arc_input in event.meta.get("fire") or []:
        if target not in state.waiting:
            state.waiting[target] = arc_input or {}
            state.scheduled_by[target] = name


def _execution_end(state: ExecutionState, event: Event) -> None:
    if event.event_type == ev.WORKFLOW_COMPLETED:
        state.status, state.result = "completed", event.result
    elif event.event_type == ev.WORKFLOW_FAILED:
        state.status = "failed"
        state.error = (event.error or {}).get("message") or state.error
    state.finished = True


def _playbook_end(state: ExecutionState, event: Event) -> None:
    _execution_end(state, event)
    state.status = "completed" if event.event_type == ev.PLAYBOOK_COMPLETED else "failed"


def _cancelled(state: ExecutionState, event: Event) -> None:
    state.status = "cancelled"
    state.finished = True
    state.error = (event.error or {}).get("message") or "cancelled"
    state.running.clear()
    state.waiting.clear()
    state.scheduled_by.clear()


def _resumed(state: ExecutionState, event: Event) -> None:
    """Open a finished execution again: the steps the resume names wait to be entered again (a loop
    keeps the iterations that completed), along with the steps that were waiting when it stopped."""
    state.status, state.finished, state.failed = "running", False, False
    state.error, state.result = None, None
    state.running.clear()
    for item in event.meta.get("steps") or []:
        name = str(item["step"])
        state.waiting.setdefault(name, dict(item.get("arc_input") or {}))
        kept = item.get("kept_iterations") or {}
        if kept:
            state.resumed_iterations[name] = {int(index): value for index, value in kept.items()}
    for name, arc_input in (event.meta.get("waiting") or {}).items():
        state.waiting.setdefault(name, dict(arc_input or {}))
    for name, scheduler in (event.meta.get("scheduled_by") or {}).items():
        state.scheduled_by.setdefault(name, str(scheduler))


def _reused(state: ExecutionState, event: Event) -> None:
    """A rerun takes over a step that completed in the execution it reruns, with its `set` writes."""
    name = event.node_name or ""
    apply_set(state, event.meta.get("set"))
    state.results[name] = event.result
    state.step_status[name] = "completed"
    state.completed_steps.append(name)
    state.last_completed = name


_HANDLERS = {
    ev.PLAYBOOK_INITIALIZED: _playbook_initialized,
    ev.WORKFLOW_INITIALIZED: _workflow_initialized,
    ev.STEP_ENTER: _step_enter,
    ev.CALL_DONE: _call_reported,
    ev.CALL_ERROR: _call_reported,
    ev.LOOP_DONE: _loop_done,
    ev.STEP_EXIT: _step_exit,
    ev.WORKFLOW_COMPLETED: _execution_end,
    ev.WORKFLOW_FAILED: _execution_end,
    ev.PLAYBOOK_COMPLETED: _playbook_end,
    ev.PLAYBOOK_FAILED: _playbook_end,
    ev.EXECUTION_CANCELLED: _cancelled,
    ev.EXECUTION_RESUMED: _resumed,
    ev.STEP_REUSED: _reused,
}
