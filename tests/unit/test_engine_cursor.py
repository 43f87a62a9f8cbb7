"""Cursor loops in the pure engine: frames issued up to max_in_flight, drained by an empty claim,
results in frame order, `set` per iteration, one loop.done; replaying the log gives the same state."""

from __future__ import annotations

from typing import Any

from unit.test_engine import drive

from noetl.engine import events as ev
from noetl.engine.commands import Command
from noetl.engine.state import fold
from noetl.engine.status import status_document

CURSOR = """
metadata: {name: cursor}
workflow:
  - step: start
    loop:
      cursor: {kind: postgres, auth: pg, claim: "UPDATE t SET s = 1 ... LIMIT {{ __frame_max_rows }} RETURNING id"}
      iterator: job
      spec: {mode: cursor, max_in_flight: 3, frame: {max_rows: 2, process: PROCESS}}
    tool: {kind: noop}
    set: {ctx.total: "{{ (ctx.total | default(0)) + (result if result is number else 0) }}"}
    next: {arcs: [{step: done, when: "{{ event.name == 'loop.done' }}"}]}
  - step: done
"""


def frames_of(rows: list[int], process: str) -> Any:
    """Answer each frame command with the next two rows (an empty claim once they are gone);
    an iteration's result is its row's id (the sum of a frame's ids with process: frame)."""
    remaining = list(rows)

    def answer(command: Command) -> tuple[bool, Any]:
        if command.cursor is None:
            return True, {}
        claimed = [{"id": remaining.pop(0)} for _ in range(min(2, len(remaining)))]
        if process == "frame":
            results = [sum(r["id"] for r in claimed)] if claimed else []
        else:
            results = [r["id"] for r in claimed]
        return True, {"frame": command.cursor["index"], "rows": len(claimed), "items": claimed,
                      "results": results, "failed": []}

    return answer


def test_frames_until_the_claim_returns_nothing() -> None:
    state, log, issued = drive(CURSOR.replace("PROCESS", "row"), frames_of([1, 2, 3, 4, 5], "row"))
    frames = [c for c in issued if c.cursor is not None]
    assert frames[0].cursor is not None and frames[0].cursor["frame"]["max_rows"] == 2
    assert "__frame_max_rows" in frames[0].cursor["source"]["claim"]
    # Three at once at the start; each report with rows issues the next frame until one comes back empty.
    assert [c.loop_index for c in frames[:3]] == [0, 1, 2]
    assert [e.event_type for e in log].count(ev.LOOP_DONE) == 1
    assert state.status == "completed"
    assert state.results["start"] == {"results": [1, 2, 3, 4, 5], "stats": {"total": 5, "success": 5, "failed": 0}}
    assert state.ctx["total"] == 15  # the step's set ran after each of the five iterations
    assert "done" in state.completed_steps
    replayed = fold(log)
    assert replayed.results == state.results and replayed.ctx == state.ctx
    assert status_document(log)["status"] == "completed"


def test_process_frame_makes_each_frame_one_iteration() -> None:
    state, _, _ = drive(CURSOR.replace("PROCESS", "frame"), frames_of([1, 2, 3], "frame"))
    assert state.results["start"]["results"] == [3, 3]
    assert state.results["start"]["stats"] == {"total": 2, "success": 2, "failed": 0}


def test_a_failed_claim_ends_the_cursor_and_fails_the_loop() -> None:
    def answer(command: Command) -> tuple[bool, Any]:
        return (False, "relation t does not exist") if command.cursor is not None else (True, {})

    state, log, _ = drive(CURSOR.replace("PROCESS", "row"), answer)
    assert [e.event_type for e in log].count(ev.LOOP_DONE) == 1
    assert state.results["start"]["stats"] == {"total": 3, "success": 0, "failed": 3}
    assert state.status == "completed"  # the loop.done arc handled the failure
    assert state.step_status["start"] == "failed"
