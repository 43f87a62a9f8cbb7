"""Cursor loops in the decider: the frame command, the loop names of an iteration, per-row `set`.

See :mod:`noetl.engine.cursor` for how frames are issued and folded. A frame command carries what a
worker needs to claim and run the frame (``Command.cursor``): the claim's source, the frame spec,
the iterator name and the step's ``input`` templates, which are rendered per iteration on the
worker because the rows are only known there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noetl.engine.commands import Command
from noetl.engine.cursor import iterations
from noetl.engine.envelope import envelope
from noetl.engine.events import Event
from noetl.engine.state import ExecutionState, StepRun
from noetl.errors import ErrorInfo, NoetlError

if TYPE_CHECKING:
    from noetl.dsl.model import Step
    from noetl.engine.decide import Engine


def frame_command(engine: Engine, state: ExecutionState, step: Step, run: StepRun, frame: int) -> Command:
    """The command that claims and runs frame number ``frame`` of a cursor loop."""
    assert step.loop is not None and step.loop.cursor is not None
    command = engine._command(state, step, run, {}, frame, {})
    command.cursor = {
        "source": step.loop.cursor.model_dump(exclude_none=True),
        "frame": step.loop.spec.frame.model_dump(),
        "iterator": step.loop.iterator,
        "input": step.input,
        "index": frame,
    }
    return command


def iteration_local(iterator: str, item: Any, index: int, frame: int, count: int) -> dict[str, Any]:
    """The loop names of one iteration of a frame: ``iter.<iterator>`` (the row, or the frame's rows),
    ``<iterator>``, ``iter._index`` (the position in the frame), ``iter._frame`` and ``loop.*``
    (counted within the frame: cursor loops have no total until they are drained)."""
    return {
        "iter": {iterator: item, "_index": index, "index": index, "_frame": frame},
        iterator: item,
        "loop": {"index": index + 1, "index0": index, "first": index == 0, "last": index == count - 1,
                 "length": count, "frame": frame},
    }


def apply_frame_set(engine: Engine, state: ExecutionState, step: Step, event: Event) -> None:
    """A loop step's ``set`` after each successful iteration of the frame, in claim order; an
    iteration whose ``set`` fails to render becomes a failed iteration carrying that error."""
    assert step.loop is not None
    process = step.loop.spec.frame.process
    # A copy: failing an iteration rewrites the report, and the engine never changes the event it was handed.
    report = {**event.result, "results": list(event.result.get("results") or [])}
    event.result = report
    frame = int(event.meta.get("loop_index") or 0)
    count = len(report.get("items") or []) if process == "row" else 1
    updates: dict[str, Any] = dict(event.meta.get("set") or {})
    for index, item, result in iterations(event, process):
        local = {**iteration_local(step.loop.iterator, item, index, frame, count),
                 "output": envelope(True, result, None, kind=engine._result_kind(step)),
                 "result": result, "response": result}
        try:
            updates.update(engine._render_set(state, step.set, local, f"step {step.step!r} set",
                                              pending=updates))
        except NoetlError as exc:
            report["results"][index] = ErrorInfo("template", str(exc), False).to_dict()
            report["failed"] = sorted({*(report.get("failed") or []), index})
    event.meta["set"] = updates
