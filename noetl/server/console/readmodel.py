"""What the execution page shows, folded from the event log: each step's runs, loop progress,
captured logs and a timeline. Pure functions of the events (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.engine.logs import LogLine, log_lines, merged, streamed_lines

__all__ = ["LogLine", "StepView", "Timeline", "log_lines", "merged", "step_views", "streamed_lines", "timeline"]

MAX_FAILURES_SHOWN = 20


@dataclass(slots=True)
class StepView:
    name: str
    status: str = "pending"  # pending | running | completed | failed
    input: Any = None
    result: Any = None
    error: dict[str, Any] | None = None
    started_at: str | None = None
    ended_at: str | None = None
    total: int | None = None  # loop iterations
    done: int = 0
    failed: int = 0
    entries: int = 0
    # Failed loop iterations: (loop index, error), the first MAX_FAILURES_SHOWN of them.
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def progress(self) -> dict[str, int] | None:
        if self.total is None:
            return None
        return {"done": self.done, "failed": self.failed, "total": self.total}

    def live(self) -> dict[str, Any]:
        """What the page's script needs to repaint this step."""
        return {"status": self.status, "progress": self.progress()}


@dataclass(slots=True)
class Bar:
    """One timeline bar: a step (from step.enter to step.exit) or one of its calls."""

    label: str
    start: float  # seconds since the execution started
    end: float
    status: str
    call: bool = False


@dataclass(slots=True)
class Timeline:
    bars: list[Bar] = field(default_factory=list)
    span: float = 0.0


def step_views(events: list[Event], step_names: list[str]) -> dict[str, StepView]:
    views = {name: StepView(name) for name in step_names}
    for event in events:
        name = event.node_name
        if event.event_type in ev.TERMINAL_EVENT_TYPES:
            _stop_running(views, event)
        if not name:
            continue
        view = views.setdefault(name, StepView(name))
        _apply(view, event)
    return views


def _stop_running(views: dict[str, StepView], event: Event) -> None:
    """Steps still running when the execution ended were stopped with it."""
    for view in views.values():
        if view.status == "running":
            view.status, view.ended_at = "cancelled", event.created_at


def _apply(view: StepView, event: Event) -> None:
    kind = event.event_type
    if kind == ev.STEP_ENTER:
        view.status, view.entries, view.started_at, view.ended_at = "running", view.entries + 1, event.created_at, None
        view.error, view.result, view.done, view.failed, view.failures = None, None, 0, 0, []
        view.input = (event.result or {}).get("input") if isinstance(event.result, dict) else None
        total = (event.meta.get("loop") or {}).get("total")
        view.total = total if isinstance(total, int) else None
    elif kind in (ev.CALL_DONE, ev.CALL_ERROR) and event.meta.get("loop_index") is not None:
        if kind == ev.CALL_DONE:
            view.done += 1
        else:
            view.failed += 1
            if len(view.failures) < MAX_FAILURES_SHOWN:
                view.failures.append((int(event.meta["loop_index"]), event.error or {}))
    elif kind == ev.CALL_ERROR:
        view.error = event.error
    elif kind == ev.STEP_EXIT:
        view.status = event.status or "completed"
        view.result = event.result
        view.error = event.error or (view.error if view.status == "failed" else None)
        view.ended_at = event.created_at


def timeline(events: list[Event], max_call_bars: int = 200) -> Timeline:
    """Bars for steps and their calls (the first ``max_call_bars`` calls: a 10,000-iteration loop
    stays one bar per step beyond that)."""
    origin = _seconds(events[0].created_at) if events else None
    if origin is None:
        return Timeline()
    out = Timeline()
    open_steps: dict[str, float] = {}
    end = origin
    calls = 0
    for event in events:
        at = _seconds(event.created_at)
        if at is None:
            continue
        end = max(end, at)
        name = event.node_name or ""
        if event.event_type == ev.STEP_ENTER:
            open_steps[name] = at - origin
        elif event.event_type == ev.STEP_EXIT and name in open_steps:
            out.bars.append(Bar(name, open_steps.pop(name), at - origin, event.status or "completed"))
        elif event.event_type in (ev.CALL_DONE, ev.CALL_ERROR) and calls < max_call_bars:
            calls += 1
            duration = float(event.meta.get("duration") or 0.0)
            index = event.meta.get("loop_index")
            label = f"{name}[{index}]" if index is not None else f"{name} call"
            out.bars.append(Bar(label, max(0.0, at - origin - duration), at - origin,
                                "completed" if event.event_type == ev.CALL_DONE else "failed", call=True))
    for name, start in open_steps.items():
        out.bars.append(Bar(name, start, end - origin, "running"))
    out.bars.sort(key=lambda bar: (bar.start, bar.call))
    out.span = max(end - origin, 0.001)
    return out


def _seconds(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp()
    except (TypeError, ValueError):
        return None
