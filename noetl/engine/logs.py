"""An execution's logs: the output each call printed (``print`` in python, a shell step's
stdout/stderr), in order.

A call run by a runtime that streams logs (noetl.runtime.logstream) stores its lines while it runs
and its ``call.done`` / ``call.error`` event says so (``meta.logs_streamed``); the event's own copy
(``meta.logs``) is then not a second source. Older events carry their lines only in ``meta.logs``.
Both kinds are merged by time, so an execution recorded before streaming existed reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from noetl.engine import events as ev
from noetl.engine.events import Event


@dataclass(slots=True)
class LogLine:
    event_id: int | None  # the event that carried the line (None: streamed while the call ran)
    created_at: str
    step: str
    loop_index: int | None
    text: str
    stream: str = "stdout"
    log_id: int | None = None  # the stored line's id (streamed lines)

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "log_id": self.log_id, "created_at": self.created_at,
                "step": self.step, "loop_index": self.loop_index, "stream": self.stream, "line": self.text}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> LogLine:
        return cls(row.get("event_id"), row["created_at"], row["step"], row.get("loop_index"), row["line"],
                   row.get("stream") or "stdout", row.get("log_id"))

    def render(self) -> str:
        where = self.step if self.loop_index is None else f"{self.step}[{self.loop_index}]"
        return f"{self.created_at[:19].replace('T', ' ')} {where}: {self.text}"


def log_lines(events: list[Event], step: str | None = None) -> list[LogLine]:
    """The lines events carry themselves (calls whose lines were not streamed)."""
    lines = []
    for event in events:
        if event.event_type not in (ev.CALL_DONE, ev.CALL_ERROR) or event.meta.get("logs_streamed"):
            continue
        logs = event.meta.get("logs")
        if not logs or (step and event.node_name != step):
            continue
        for text in logs:
            lines.append(LogLine(event.event_id, event.created_at, event.node_name or "",
                                 event.meta.get("loop_index"), str(text)))
    return lines


def streamed_lines(records: list[Any]) -> list[LogLine]:
    """Lines stored while their calls ran (the store's ``LogRecord`` rows)."""
    return [LogLine(None, r.created_at, r.step, r.loop_index, r.line, r.stream, r.log_id) for r in records]


def merged(*groups: list[LogLine]) -> list[LogLine]:
    """Lines of both sources in time order (each source is already in order; ties keep it)."""
    lines = [line for group in groups for line in group]
    if len(groups) > 1:
        lines.sort(key=lambda line: line.created_at)
    return lines
