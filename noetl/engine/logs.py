"""An execution's logs: the output each call captured (``print`` in python, a shell step's
stdout/stderr), carried in the ``meta.logs`` of its ``call.done`` / ``call.error`` event, in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from noetl.engine import events as ev
from noetl.engine.events import Event


@dataclass(slots=True)
class LogLine:
    event_id: int
    created_at: str
    step: str
    loop_index: int | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "created_at": self.created_at, "step": self.step,
                "loop_index": self.loop_index, "line": self.text}

    def render(self) -> str:
        where = self.step if self.loop_index is None else f"{self.step}[{self.loop_index}]"
        return f"{self.created_at[:19].replace('T', ' ')} {where}: {self.text}"


def log_lines(events: list[Event], step: str | None = None) -> list[LogLine]:
    lines = []
    for event in events:
        logs = event.meta.get("logs") if event.event_type in (ev.CALL_DONE, ev.CALL_ERROR) else None
        if not logs or (step and event.node_name != step):
            continue
        for text in logs:
            lines.append(LogLine(event.event_id, event.created_at, event.node_name or "",
                                 event.meta.get("loop_index"), str(text)))
    return lines
