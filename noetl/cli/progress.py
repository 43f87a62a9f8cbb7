"""Live progress while `noetl run` works (and while `status --watch` / `exec --wait` follow an
execution): a rich display on a terminal, plain lines otherwise.

Both show the execution id first, each loop's done/failed/total with its rate and ETA (from the
events' own timestamps), child executions under their parent, and a failed call's error at the
playbook file's line with the output it captured.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from noetl.engine import events as ev
from noetl.engine.events import Event

# The failed calls of one step whose details are printed (the rest are counted).
MAX_FAILURES_PRINTED = 3
MAX_OUTPUT_LINES = 20


@dataclass(slots=True)
class PlaybookSource:
    """Where the playbook came from, to point an error at the file's own line."""

    file: str
    text: str


@dataclass(slots=True, eq=False, repr=False)  # state that changes as it runs: compared and shown by identity
class LoopCount:
    """A loop step's iterations as the progress lines count them."""

    total: int
    started: float | None
    done: int = 0
    failed: int = 0
    printed_failures: int = 0
    kept: int = 0  # iterations a resume kept: counted as done, not in the rate

    @classmethod
    def entered(cls, event: Event) -> LoopCount | None:
        """The count a loop step's ``step.enter`` starts (None for a step that is not a loop)."""
        loop = event.meta.get("loop") or {}
        total, kept = loop.get("total"), loop.get("kept")
        if total is None:
            return None
        kept = kept if isinstance(kept, int) else 0
        return cls(total, _timestamp(event), done=kept, kept=kept)

    def summary(self, now: float | None) -> str:
        finished = self.done + self.failed
        text = f"{finished}/{self.total}" + (f" ({self.failed} failed)" if self.failed else "")
        ran = finished - self.kept
        if self.started is None or now is None or ran <= 0 or now <= self.started:
            return text
        rate = ran / (now - self.started)
        remaining = (self.total - finished) / rate if rate else 0.0
        eta = f", eta {_seconds(remaining)}" if finished < self.total else ""
        return f"{text} {rate:.1f}/s{eta}"


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{int(value // 60)} min {int(value % 60)} s"


def _timestamp(event: Event) -> float | None:
    try:
        return datetime.fromisoformat(event.created_at).timestamp()
    except (TypeError, ValueError):
        return None


def failure_lines(event: Event, source: PlaybookSource | None, indent: str = "    ") -> list[str]:
    """A failed call: its error, the playbook line it points at, and the output it captured."""
    from noetl.dsl.codelines import error_location

    error = event.error or {}
    index = event.meta.get("loop_index")
    where = f"{event.node_name}[{index}]" if index is not None else str(event.node_name)
    lines = [f"{indent}{where}: {error.get('message') or 'failed'}"]
    if source is not None and (at := error_location(source.text, event.node_name or "", error, source.file)):
        lines.append(f"{indent}  at {at}")
    output = [str(line) for line in event.meta.get("logs") or []]
    if output:
        lines.append(f"{indent}  output:")
        shown = output[-MAX_OUTPUT_LINES:]
        if len(output) > len(shown):
            lines.append(f"{indent}    ... {len(output) - len(shown)} earlier lines (noetl logs {event.execution_id})")
        lines.extend(f"{indent}    {line}" for line in shown)
    return lines


class _Counting:
    """What both displays track: the root execution, its loops, and which failures to detail."""

    def __init__(self, source: PlaybookSource | None) -> None:
        self.source = source
        self.root: str | None = None
        self.loops: dict[str, LoopCount] = {}

    def failure_detail(self, event: Event) -> list[str]:
        if event.event_type != ev.CALL_ERROR:
            return []
        counts = self.loops.get(event.node_name or "") if event.execution_id == self.root else None
        if counts is not None:
            counts.printed_failures += 1
            if counts.printed_failures > MAX_FAILURES_PRINTED:
                return []
        source = self.source if event.execution_id == self.root else None
        return failure_lines(event, source)

    def routing_location(self, event: Event) -> list[str]:
        """Where a step that failed while routing (its `set`, an arc) went wrong: no call error said it."""
        error = event.error or {}
        if error.get("kind") != "routing" or self.source is None or event.execution_id != self.root:
            return []
        from noetl.dsl.codelines import error_location  # parses the playbook text, only for such a failure

        at = error_location(self.source.text, event.node_name or "", error, self.source.file)
        return [f"      at {at}"] if at else []

    def count(self, event: Event) -> LoopCount | None:
        counts = self.loops.get(event.node_name or "")
        if counts is None or "loop_index" not in event.meta:
            return None
        if event.event_type == ev.CALL_DONE:
            counts.done += 1
        else:
            counts.failed += 1
        return counts


class PlainProgress(_Counting):
    """One line per step transition (for logs and pipes)."""

    def __init__(self, stream: TextIO | None = None, source: PlaybookSource | None = None) -> None:
        super().__init__(source)
        self.stream = stream or sys.stderr

    def __call__(self, event: Event) -> None:
        self.root = self.root or event.execution_id
        # Child playbooks get one line when they start and one when they end.
        lines = self._child_lines(event) if event.execution_id != self.root else self._lines(event)
        for line in lines:
            print(line, file=self.stream, flush=True)

    def _lines(self, event: Event) -> list[str]:
        kind, step = event.event_type, event.node_name
        if kind == ev.PLAYBOOK_INITIALIZED:
            return [f"execution {event.execution_id} started ({event.meta.get('path')})"]
        if kind == ev.STEP_ENTER:
            counts = LoopCount.entered(event)
            if counts is not None:
                self.loops[step or ""] = counts
                kept = f", {counts.kept} kept" if counts.kept else ""
                return [f"  > {step} (loop of {counts.total}{kept})"]
            return [f"  > {step}"]
        if kind in (ev.CALL_DONE, ev.CALL_ERROR):
            return self._loop_lines(event) + self.failure_detail(event)
        if kind == ev.STEP_EXIT:
            mark = "ok" if event.status == "completed" else "FAILED"
            detail = f": {(event.error or {}).get('message')}" if event.status != "completed" else ""
            return [f"  < {step} {mark}{detail}", *self.routing_location(event)]
        if kind in ev.TERMINAL_EVENT_TYPES:
            return [f"execution {event.execution_id} {event.status}"]
        return []

    def _child_lines(self, event: Event) -> list[str]:
        if event.event_type == ev.PLAYBOOK_INITIALIZED:
            return [f"    child {event.execution_id} started ({event.meta.get('path')})"]
        if event.event_type in ev.TERMINAL_EVENT_TYPES:
            return [f"    child {event.execution_id} {event.status}"]
        return self.failure_detail(event)

    def _loop_lines(self, event: Event) -> list[str]:
        counts = self.count(event)
        if counts is None:
            return []
        finished = counts.done + counts.failed
        every = max(1, counts.total // 10)
        if finished == counts.total or finished % every == 0:
            return [f"    {event.node_name}: {counts.summary(_timestamp(event))}"]
        return []

    def close(self) -> None:
        return None


class RichProgress(_Counting):
    """Steps as they run, with a progress bar per loop and a line per child execution (terminal only)."""

    def __init__(self, source: PlaybookSource | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        super().__init__(source)
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
                                 TimeElapsedColumn(), console=self.console, transient=False)
        self.bars: dict[str, Any] = {}
        self.children: dict[str, Any] = {}
        self.progress.start()

    def __call__(self, event: Event) -> None:
        self.root = self.root or event.execution_id
        if event.execution_id != self.root:
            self._child(event)
            return
        kind, step = event.event_type, event.node_name or ""
        if kind == ev.PLAYBOOK_INITIALIZED:
            self.console.print(f"execution {event.execution_id} started ({event.meta.get('path')})",
                               markup=False, highlight=False)
        elif kind == ev.STEP_ENTER:
            counts = LoopCount.entered(event)
            if counts is not None:
                self.loops[step] = counts
            self.bars[step] = self.progress.add_task(f"[cyan]{_plain(step)}", total=counts.total if counts else 1,
                                                     completed=counts.kept if counts else 0, counts="")
        elif kind in (ev.CALL_DONE, ev.CALL_ERROR):
            counts = self.count(event)
            if counts is not None and step in self.bars:
                self.progress.update(self.bars[step], completed=counts.done + counts.failed,
                                     counts=counts.summary(_timestamp(event)))
            self._print(self.failure_detail(event))
        elif kind == ev.STEP_EXIT and step in self.bars:
            task = self.bars.pop(step)
            ok = event.status == "completed"
            total = self.progress.tasks[task].total or 1
            self.progress.update(task, completed=total,
                                 description=f"[green]{_plain(step)}" if ok else f"[red]{_plain(step)} failed")
            if not ok:
                self._print([f"{(event.error or {}).get('message')}", *self.routing_location(event)])

    def _child(self, event: Event) -> None:
        """A child execution: one line under its parent step, advancing as its steps end."""
        kind, child = event.event_type, event.execution_id
        if kind == ev.PLAYBOOK_INITIALIZED:
            self.children[child] = self.progress.add_task(
                f"  [dim]↳ {_plain(str(event.meta.get('path')))} {child}", total=None, counts="")
        elif kind == ev.STEP_EXIT and child in self.children:
            self.progress.advance(self.children[child])
            self.progress.update(self.children[child], counts=f"{_plain(event.node_name or '')} {event.status}")
        elif kind in ev.TERMINAL_EVENT_TYPES and child in self.children:
            task = self.children.pop(child)
            done = self.progress.tasks[task].completed or 1
            self.progress.update(task, total=done, completed=done, counts=str(event.status))
        self._print(self.failure_detail(event))

    def _print(self, lines: list[str]) -> None:
        for line in lines:
            self.console.print(line, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.stop()


def _plain(text: str) -> str:
    """User text inside a rich description: no markup of its own."""
    from rich.markup import escape

    return escape(text)


def make_progress(enabled: bool, source: PlaybookSource | None = None) -> PlainProgress | RichProgress | None:
    if not enabled:
        return None
    if sys.stderr.isatty():
        return RichProgress(source)
    return PlainProgress(source=source)
