"""The in-flight window of loops is the decider's: the fold records what was reported, and a state
folded from the log (a resume, another worker catching up) lets out exactly what the live one would.
The engine never changes the report it is handed."""

from __future__ import annotations

import copy
from typing import Any

from unit.test_engine import drive
from unit.test_engine_cursor import CURSOR, frames_of

from noetl.dsl.parse import load_playbook_text
from noetl.engine import events as ev
from noetl.engine.decide import Engine
from noetl.engine.events import Event
from noetl.engine.state import ExecutionState, fold

PARALLEL = """
metadata: {name: window}
workflow:
  - step: start
    loop: {in: "{{ workload.items }}", iterator: it, spec: {mode: parallel, max_in_flight: 2}}
    tool: {kind: noop}
    set: {ctx.last: "{{ result }}"}
  - step: end
"""


def report(index: int, value: Any = None) -> Event:
    return Event("1", ev.CALL_DONE, node_name="start", result=value if value is not None else {"i": index},
                 meta={"loop_index": index})


def stamped(events: list[Event]) -> list[Event]:
    for i, event in enumerate(events, 1):
        event.event_id, event.created_at = i, f"2026-01-01T00:00:{i:02d}+00:00"
    return events


def test_the_window_slides_one_iteration_per_report() -> None:
    engine = Engine(load_playbook_text(PARALLEL).require())
    state = ExecutionState()
    start = engine.start(state, execution_id="1", payload={"items": [10, 20, 30, 40, 50]})
    assert [c.loop_index for c in start.commands] == [0, 1]
    assert [c.loop_index for c in engine.handle(state, report(1)).commands] == [2]
    assert [c.loop_index for c in engine.handle(state, report(1)).commands] == []  # a duplicate lets nothing out
    assert [c.loop_index for c in engine.handle(state, report(0)).commands] == [3]


def test_a_state_folded_from_the_log_lets_out_what_the_live_state_would() -> None:
    engine = Engine(load_playbook_text(PARALLEL).require())
    live = ExecutionState()
    log = list(engine.start(live, execution_id="1", payload={"items": [1, 2, 3, 4, 5]}).events)
    log += engine.handle(live, report(0)).events
    replayed = fold(stamped(copy.deepcopy(log)))
    after_live = engine.handle(live, report(2)).commands
    after_replay = engine.handle(replayed, report(2)).commands
    assert [c.loop_index for c in after_live] == [c.loop_index for c in after_replay] == [3]


def test_a_cursor_folded_from_the_log_knows_which_frames_are_out() -> None:
    _, log, issued = drive(CURSOR.replace("PROCESS", "row"), frames_of([1, 2, 3, 4, 5], "row"))
    frames = [c.loop_index for c in issued if c.cursor is not None]
    assert frames[:3] == [0, 1, 2] and len(frames) == len(set(frames))
    done = next(i for i, e in enumerate(log) if e.event_type == ev.LOOP_DONE)
    state = fold(copy.deepcopy(log[:done]))  # every frame reported, loop.done not yet folded
    assert state.running["start"].cursor is not None
    assert len(state.running["start"].cursor.reported) == len(frames)


def test_the_engine_does_not_change_the_report_it_is_handed() -> None:
    engine = Engine(load_playbook_text(PARALLEL).require())
    state = ExecutionState()
    engine.start(state, execution_id="1", payload={"items": [1, 2]})
    handed = report(0, {"rows": [1, 2]})
    before = copy.deepcopy(handed.to_dict())
    decision = engine.handle(state, handed)
    assert handed.to_dict() == before
    assert decision.events[0].meta.get("set") == {"last": {"rows": [1, 2]}}  # the recorded report


def test_a_cursor_frame_whose_set_fails_is_recorded_failed_without_changing_the_report() -> None:
    failing = CURSOR.replace("PROCESS", "row").replace(
        "set: {ctx.total: \"{{ (ctx.total | default(0)) + (result if result is number else 0) }}\"}",
        "set: {ctx.total: \"{{ 1 / (result - result) }}\"}")
    engine = Engine(load_playbook_text(failing).require())
    state = ExecutionState()
    engine.start(state, execution_id="1")
    handed = Event("1", ev.CALL_DONE, node_name="start", meta={"loop_index": 0},
                   result={"frame": 0, "rows": 1, "items": [{"id": 1}], "results": [1], "failed": []})
    before = copy.deepcopy(handed.to_dict())
    recorded = engine.handle(state, handed).events[0]
    assert handed.to_dict() == before
    assert recorded.result["failed"] == [0]
