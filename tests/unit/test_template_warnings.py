"""Undefined names through the engine: warnings on the events that rendered them, in the status
document once each (also after replaying the log), strict mode from the playbook or the start."""

from __future__ import annotations

from typing import Any

from test_engine import drive, echo_args

from noetl.dsl.parse import load_playbook_text
from noetl.engine import events as ev
from noetl.engine.decide import Engine
from noetl.engine.events import Event
from noetl.engine.state import ExecutionState, fold
from noetl.engine.status import status_document

LOOP = """
metadata: {name: loop_warnings}
workload: {items: [1, 2, 3]}
workflow:
  - step: start
    input: {tag: "{{ no_such_tag }}"}
    next: {arcs: [{step: each}]}
  - step: each
    loop: {in: "{{ items }}", iterator: item}
    input: {v: "{{ item }}", extra: "{{ iter.missing_field }}"}
    set: {ctx.last: "{{ output.data.nothing }}"}
    next:
      arcs:
        - {step: done, when: "{{ event.name == 'loop.done' and not flag_nobody_sets }}"}
  - step: done
"""


def test_warnings_are_on_the_events_that_rendered_them_and_once_in_the_status() -> None:
    state, log, _ = drive(LOOP, echo_args)
    assert state.status == "completed"
    enter = next(e for e in log if e.event_type == ev.STEP_ENTER and e.node_name == "start")
    assert [w["name"] for w in enter.meta["warnings"]] == ["no_such_tag"]
    iteration_reports = [e for e in log if e.event_type == ev.CALL_DONE and e.node_name == "each"]
    assert len(iteration_reports) == 3
    assert all({w["field"] for w in e.meta["warnings"]} == {"set ctx.last"} for e in iteration_reports)
    exit_each = next(e for e in log if e.event_type == ev.STEP_EXIT and e.node_name == "each")
    assert [w["name"] for w in exit_each.meta["warnings"]] == ["flag_nobody_sets"]

    doc = status_document(log)
    assert [(w["step"], w["field"]) for w in doc["warnings"]] == [
        ("start", "input.tag"), ("each", "set ctx.last"), ("each", "arc to 'done' when")]
    assert all(set(w) == {"step", "field", "message"} for w in doc["warnings"])
    assert "'no_such_tag' is undefined" in doc["warnings"][0]["message"]
    # The document is a fold of the log: replaying it from scratch gives the same warnings.
    replayed = [Event.from_dict(e.to_dict()) for e in log]
    assert status_document(replayed) == doc


def test_iteration_input_warnings_travel_with_the_command() -> None:
    _, _, issued = drive(LOOP, echo_args)
    iterations = [c for c in issued if c.step == "each"]
    assert len(iterations) == 3
    assert all([w["field"] for w in c.warnings] == ["input.extra"] for c in iterations)


def _start(text: str, *, strict: bool = False) -> tuple[ExecutionState, list[Event]]:
    playbook = load_playbook_text(text).require()
    state = ExecutionState()
    decision = Engine(playbook).start(state, execution_id="1", strict=strict)
    return state, decision.events


STRICT_CANDIDATE = """
metadata: {name: strict_candidate}
workflow:
  - step: start
    input: {v: "{{ no_such_value }}"}
"""


def test_strict_from_the_start_is_recorded_in_the_log_and_fails_on_an_undefined_name() -> None:
    state, events = _start(STRICT_CANDIDATE, strict=True)
    assert events[0].meta["strict"] is True
    assert state.status == "failed"
    assert "'no_such_value' is undefined in '{{ no_such_value }}'" in (state.error or "")
    assert fold(events).strict is True


def test_strict_from_the_playbook() -> None:
    text = STRICT_CANDIDATE.replace("workflow:", "executor: {spec: {strict: true}}\nworkflow:")
    state, events = _start(text)
    assert state.status == "failed" and "no_such_value" in (state.error or "")
    assert "strict" not in events[0].meta  # the playbook says it; the log need not repeat it


def test_lenient_by_default_renders_null_and_runs_on() -> None:
    state, log, issued = drive(STRICT_CANDIDATE, echo_args)
    assert state.status == "completed"
    assert issued[0].args == {"v": None}
    assert status_document(log)["warnings"][0]["field"] == "input.v"


FAILED_STEP = """
metadata: {name: failed_step}
workflow:
  - step: start
    next:
      arcs:
        - {step: big, when: "{{ start.ratio > 1 }}"}
        - {step: small}
  - step: big
  - step: small
"""


def test_an_arc_that_cannot_evaluate_on_a_failed_step_never_replaces_its_error() -> None:
    def fail(command: Any) -> tuple[bool, Any]:
        return False, "ZeroDivisionError: division by zero"

    state, log, _ = drive(FAILED_STEP, fail)
    assert state.status == "failed"
    exit_start = next(e for e in log if e.event_type == ev.STEP_EXIT)
    assert exit_start.error is not None
    assert exit_start.error["kind"] == "test"
    assert "ZeroDivisionError" in exit_start.error["message"]
    assert "start.ratio > 1" in exit_start.error["notes"][0]
    assert "ZeroDivisionError" in (state.error or "")
    assert state.completed_steps == []
