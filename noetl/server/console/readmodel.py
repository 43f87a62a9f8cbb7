"""What the execution page shows, folded from the event log: each step's runs, loop progress,
captured logs and a timeline. Pure functions of the events (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.engine.logs import LogLine, log_lines, merged, streamed_lines

__all__ = ["LogLine", "StepFold", "StepView", "Timeline", "TimelineFold", "log_lines", "merged", "step_views",
           "streamed_lines", "timeline"]

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


class StepFold:
    """Each step's view, folded from the events a page at a time: a 10,000-iteration loop's log is
    never all in memory, and a live page adds only what is new."""

    def __init__(self, step_names: list[str]) -> None:
        self.views = {name: StepView(name) for name in step_names}

    def add(self, events: list[Event]) -> None:
        views = self.views
        for event in events:
            name = event.node_name
            if event.event_type in ev.TERMINAL_EVENT_TYPES:
                _stop_running(views, event)
            if not name:
                continue
            view = views.setdefault(name, StepView(name))
            _apply(view, event)


def step_views(events: list[Event], step_names: list[str]) -> dict[str, StepView]:
    fold = StepFold(step_names)
    fold.add(events)
    return fold.views


def _stop_running(views: dict[str, StepView], event: Event) -> None:
    """Steps still running when the execution ended were stopped with it."""
    for view in views.values():
        if view.status == "running":
            view.status, view.ended_at = "cancelled", event.created_at


def _apply(view: StepView, event: Event) -> None:
    kind = event.event_type
    if kind == ev.STEP_ENTER:
        view.status, view.entries, view.started_at, view.ended_at = "running", view.entries + 1, event.created_at, None
        loop = event.meta.get("loop") or {}
        kept = loop.get("kept")  # iterations a resume kept from the step's previous run
        view.error, view.result, view.failed, view.failures = None, None, 0, []
        view.done = kept if isinstance(kept, int) else 0
        view.input = (event.result or {}).get("input") if isinstance(event.result, dict) else None
        total = loop.get("total")
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


class TimelineFold:
    """Bars for steps and their calls (the first ``max_call_bars`` calls: a 10,000-iteration loop
    stays one bar per step beyond that), folded from the events a page at a time."""

    def __init__(self, max_call_bars: int = 200) -> None:
        self.max_call_bars = max_call_bars
        self.origin: float | None = None
        self.end = 0.0
        self.calls = 0
        self.open_steps: dict[str, float] = {}
        self.bars: list[Bar] = []

    def add(self, events: list[Event]) -> None:
        for event in events:
            at = _seconds(event.created_at)
            if at is None:
                continue
            if self.origin is None:
                self.origin = self.end = at
            self.end = max(self.end, at)
            self._bar(event, at - self.origin)

    def _bar(self, event: Event, at: float) -> None:
        name = event.node_name or ""
        if event.event_type == ev.STEP_ENTER:
            self.open_steps[name] = at
        elif event.event_type == ev.STEP_EXIT and name in self.open_steps:
            self.bars.append(Bar(name, self.open_steps.pop(name), at, event.status or "completed"))
        elif event.event_type in (ev.CALL_DONE, ev.CALL_ERROR) and self.calls < self.max_call_bars:
            self.calls += 1
            duration = float(event.meta.get("duration") or 0.0)
            index = event.meta.get("loop_index")
            label = f"{name}[{index}]" if index is not None else f"{name} call"
            self.bars.append(Bar(label, max(0.0, at - duration), at,
                                 "completed" if event.event_type == ev.CALL_DONE else "failed", call=True))

    def timeline(self) -> Timeline:
        if self.origin is None:
            return Timeline()
        span = self.end - self.origin
        bars = [*self.bars, *(Bar(name, start, span, "running") for name, start in self.open_steps.items())]
        bars.sort(key=lambda bar: (bar.start, bar.call))
        return Timeline(bars, max(span, 0.001))


def timeline(events: list[Event], max_call_bars: int = 200) -> Timeline:
    fold = TimelineFold(max_call_bars)
    fold.add(events)
    return fold.timeline()


def _seconds(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp()
    except (TypeError, ValueError):
        return None
