"""Live progress while `noetl run` works: a rich display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from noetl.engine import events as ev
from noetl.engine.events import Event


class PlainProgress:
    """One line per step transition (for logs and pipes)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.loops: dict[str, list[int]] = {}
        self.root: str | None = None

    def __call__(self, event: Event) -> None:
        self.root = self.root or event.execution_id
        # Child playbooks get one line when they start and one when they end.
        line = self._child_line(event) if event.execution_id != self.root else self._line(event)
        if line:
            print(line, file=self.stream, flush=True)

    def _line(self, event: Event) -> str | None:
        kind, step = event.event_type, event.node_name
        if kind == ev.PLAYBOOK_INITIALIZED:
            return f"execution {event.execution_id} started ({event.meta.get('path')})"
        if kind == ev.STEP_ENTER:
            total = (event.meta.get("loop") or {}).get("total")
            if total is not None:
                self.loops[step or ""] = [0, total]
                return f"  > {step} (loop of {total})"
            return f"  > {step}"
        if kind in (ev.CALL_DONE, ev.CALL_ERROR) and "loop_index" in event.meta:
            return self._loop_line(event)
        if kind == ev.STEP_EXIT:
            mark = "ok" if event.status == "completed" else "FAILED"
            detail = f": {(event.error or {}).get('message')}" if event.status != "completed" else ""
            return f"  < {step} {mark}{detail}"
        if kind in ev.TERMINAL_EVENT_TYPES:
            return f"execution {event.execution_id} {event.status}"
        return None

    @staticmethod
    def _child_line(event: Event) -> str | None:
        if event.event_type == ev.PLAYBOOK_INITIALIZED:
            return f"    child {event.execution_id} started ({event.meta.get('path')})"
        if event.event_type in ev.TERMINAL_EVENT_TYPES:
            return f"    child {event.execution_id} {event.status}"
        return None

    def _loop_line(self, event: Event) -> str | None:
        counts = self.loops.get(event.node_name or "")
        if counts is None:
            return None
        counts[0] += 1
        done, total = counts
        step = max(1, total // 10)
        if done == total or done % step == 0:
            return f"    {event.node_name}: {done}/{total}"
        return None

    def close(self) -> None:
        return None


class RichProgress:
    """Steps as they run, with a progress bar per loop (terminal only)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=False)
        self.bars: dict[str, Any] = {}
        self.root: str | None = None
        self.progress.start()

    def __call__(self, event: Event) -> None:
        self.root = self.root or event.execution_id
        if event.execution_id != self.root:
            return  # child playbooks show as their parent step's progress
        kind, step = event.event_type, event.node_name or ""
        if kind == ev.STEP_ENTER:
            total = (event.meta.get("loop") or {}).get("total")
            self.bars[step] = self.progress.add_task(f"[cyan]{step}", total=total if total is not None else 1)
        elif kind in (ev.CALL_DONE, ev.CALL_ERROR) and "loop_index" in event.meta and step in self.bars:
            self.progress.advance(self.bars[step])
        elif kind == ev.STEP_EXIT and step in self.bars:
            task = self.bars.pop(step)
            ok = event.status == "completed"
            total = self.progress.tasks[task].total or 1
            self.progress.update(task, completed=total,
                                 description=f"[green]{step}" if ok else f"[red]{step} failed")
            if not ok:
                self.console.print(f"[red]{(event.error or {}).get('message')}")

    def close(self) -> None:
        self.progress.stop()


def make_progress(enabled: bool) -> PlainProgress | RichProgress | None:
    if not enabled:
        return None
    if sys.stderr.isatty():
        return RichProgress()
    return PlainProgress()
