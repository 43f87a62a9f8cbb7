"""The pure engine as table-driven calls: a playbook, scripted tool outcomes, expected decisions.

No I/O: commands are answered by a scripted function instead of tools, and events are stamped by
the test. Each case also checks that folding the emitted events from scratch gives the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from noetl.dsl.parse import load_playbook_text
from noetl.engine import events as ev
from noetl.engine.commands import Command
from noetl.engine.decide import Engine, merge_payload
from noetl.engine.events import Event
from noetl.engine.state import ExecutionState, fold
from noetl.engine.status import status_document

Answer = Callable[[Command], tuple[bool, Any]]


def drive(yaml_text: str, answer: Answer, payload: dict[str, Any] | None = None,
          order: str = "fifo") -> tuple[ExecutionState, list[Event], list[Command]]:
    """Run an execution to the end, answering commands in FIFO (or LIFO) order."""
    playbook = load_playbook_text(yaml_text).require()
    engine = Engine(playbook)
    state = ExecutionState()
    decision = engine.start(state, execution_id="1", payload=payload)
    log, issued = list(decision.events), list(decision.commands)
    queue = list(decision.commands)
    while queue and not state.finished:
        command = queue.pop(0 if order == "fifo" else -1)
        ok, value = answer(command)
        event = Event("1", ev.CALL_DONE if ok else ev.CALL_ERROR, node_name=command.step,
                      result=value if ok else None,
                      error=None if ok else {"kind": "test", "message": str(value), "retryable": False},
                      meta={"loop_index": command.loop_index} if command.loop_index is not None else {})
        decision = engine.handle(state, event)
        log.extend(decision.events)
        issued.extend(decision.commands)
        queue.extend(decision.commands)
    for i, event in enumerate(log, 1):
        event.event_id, event.created_at = i, f"2026-01-01T00:00:{i % 60:02d}+00:00"
    return state, log, issued


def steps_entered(log: list[Event]) -> list[str]:
    return [e.node_name or "" for e in log if e.event_type == ev.STEP_ENTER]


def echo_args(command: Command) -> tuple[bool, Any]:
    return True, dict(command.args)


CHAIN = """
metadata: {name: chain}
workflow:
  - step: start
    next: {arcs: [{step: a}]}
  - step: a
    next: {arcs: [{step: b}]}
  - step: b
"""

EXCLUSIVE = """
metadata: {name: excl}
workload: {x: 5}
workflow:
  - step: start
    next:
      spec: {mode: exclusive}
      arcs:
        - {step: big, when: "{{ x > 3 }}"}
        - {step: also_big, when: "{{ x > 1 }}"}
        - {step: other}
  - step: big
  - step: also_big
  - step: other
"""

INCLUSIVE = EXCLUSIVE.replace("exclusive", "inclusive")

JOIN = """
metadata: {name: join}
workflow:
  - step: start
    next: {spec: {mode: inclusive}, arcs: [{step: a}, {step: b}]}
  - step: a
    next: {arcs: [{step: j}]}
  - step: b
    next: {arcs: [{step: j}]}
  - step: j
"""

HANDLED = """
metadata: {name: handled}
workflow:
  - step: start
    tool: {kind: python, code: "x"}
    next:
      arcs:
        - {step: recover, when: "{{ event.name == 'call.error' }}", set: {ctx.why: "{{ error.message }}"}}
        - {step: happy}
  - step: recover
  - step: happy
"""

LOOP = """
metadata: {name: loop}
workload: {items: [a, b, c, d]}
workflow:
  - step: start
    loop: {in: "{{ items }}", iterator: it, spec: {mode: parallel, max_in_flight: 2}}
    input: {value: "{{ it }}", pos: "{{ iter._index }}", first: "{{ loop.first }}"}
    next: {arcs: [{step: after, when: "{{ event.name == 'loop.done' }}"}]}
  - step: after
"""


@pytest.mark.parametrize(
    ("name", "text", "answer", "entered", "status"),
    [
        ("chain runs in order", CHAIN, echo_args, ["start", "a", "b"], "completed"),
        ("exclusive takes the first match", EXCLUSIVE, echo_args, ["start", "big"], "completed"),
        ("inclusive takes every match", INCLUSIVE, echo_args, ["start", "big", "also_big", "other"], "completed"),
        ("fan-in runs the join once", JOIN, echo_args, ["start", "a", "b", "j"], "completed"),
        ("an error arc handles a failure", HANDLED, lambda c: (c.step != "start", "boom"), ["start", "recover"], "completed"),
        ("an unhandled failure fails", CHAIN.replace("- step: a\n", "- step: a\n    tool: {kind: python, code: x}\n"),
         lambda c: (c.step != "a", "bad"), ["start", "a"], "failed"),
    ],
)
def test_routing_table(name: str, text: str, answer: Answer, entered: list[str], status: str) -> None:
    state, log, _ = drive(text, answer)
    assert steps_entered(log) == entered, name
    assert state.status == status, name
    replayed = fold(log)
    assert replayed.status == state.status
    assert replayed.results == state.results
    assert replayed.ctx == state.ctx


def test_error_arc_sees_the_error_message() -> None:
    state, _, _ = drive(HANDLED, lambda c: (c.step != "start", "disk full"))
    assert state.ctx["why"].endswith("disk full")


def test_parallel_loop_bounds_in_flight_and_keeps_element_order() -> None:
    playbook = load_playbook_text(LOOP).require()
    engine = Engine(playbook)
    state = ExecutionState()
    decision = engine.start(state, execution_id="1")
    assert [c.loop_index for c in decision.commands] == [0, 1]  # max_in_flight: 2
    assert decision.commands[0].args == {"value": "a", "pos": 0, "first": True}
    # Answer element 1 before element 0: results must still be in element order.
    pending = {c.loop_index: c for c in decision.commands}
    done = engine.handle(state, Event("1", ev.CALL_DONE, node_name="start", result="B", meta={"loop_index": 1}))
    assert [c.loop_index for c in done.commands] == [2]
    pending.update({c.loop_index: c for c in done.commands})
    for index, value in ((0, "A"), (2, "C")):
        more = engine.handle(state, Event("1", ev.CALL_DONE, node_name="start", result=value,
                                          meta={"loop_index": index}))
        pending.update({c.loop_index: c for c in more.commands})
    final = engine.handle(state, Event("1", ev.CALL_DONE, node_name="start", result="D", meta={"loop_index": 3}))
    assert state.results["start"] == {"results": ["A", "B", "C", "D"],
                                      "stats": {"total": 4, "success": 4, "failed": 0}}
    assert [e.event_type for e in final.events][:3] == [ev.CALL_DONE, ev.LOOP_DONE, ev.STEP_EXIT]


def test_duplicate_report_is_ignored() -> None:
    playbook = load_playbook_text(CHAIN.replace("- step: a\n", "- step: a\n    tool: {kind: python, code: x}\n")).require()
    engine = Engine(playbook)
    state = ExecutionState()
    decision = engine.start(state, execution_id="1")
    first = engine.handle(state, Event("1", ev.CALL_DONE, node_name="start", result=1))
    assert first.commands and first.commands[0].step == "a"
    again = engine.handle(state, Event("1", ev.CALL_DONE, node_name="start", result=1))
    assert again.events == [] and again.commands == []
    del decision


def test_cancellation_stops_scheduling() -> None:
    engine = Engine(load_playbook_text(CHAIN).require())
    state = ExecutionState()
    engine.start(state, execution_id="1")
    engine.handle(state, Event("1", ev.EXECUTION_CANCELLED, error={"kind": "cancelled", "message": "stop"}))
    assert state.status == "cancelled" and state.finished
    late = engine.handle(state, Event("1", ev.CALL_DONE, node_name="start", result=1))
    assert late.events == [] and late.commands == []


def test_empty_loop_completes_at_once() -> None:
    state, log, issued = drive(LOOP.replace("[a, b, c, d]", "[]"), echo_args)
    assert state.results["start"] == {"results": [], "stats": {"total": 0, "success": 0, "failed": 0}}
    assert steps_entered(log) == ["start", "after"]
    assert all(c.step != "start" for c in issued)


def test_status_document_from_replay_matches_live_fold() -> None:
    state, log, _ = drive(JOIN, echo_args)
    doc = status_document(log)
    assert doc["status"] == "completed" and doc["completed_steps"][-1] == "j"
    assert doc == status_document(list(log))


def test_when_that_fails_to_render_fails_the_execution() -> None:
    text = CHAIN.replace("next: {arcs: [{step: a}]}", "next: {arcs: [{step: a, when: '{{ nope.x > 1 }}'}]}")
    state, log, _ = drive(text, echo_args)
    assert state.status == "failed"
    assert "nope" in (state.error or "") and "arc to 'a'" in (state.error or "")


@pytest.mark.parametrize(
    ("workload", "payload", "merge", "expected"),
    [
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 9}}, False, {"a": {"x": 9}}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 9}}, True, {"a": {"x": 9, "y": 2}}),
        ({"a": 1}, None, False, {"a": 1}),
    ],
)
def test_payload_merge(workload: dict[str, Any], payload: dict[str, Any] | None, merge: bool,
                       expected: dict[str, Any]) -> None:
    assert merge_payload(workload, payload, merge=merge) == expected


def test_lifo_answers_give_the_same_join() -> None:
    state, log, _ = drive(JOIN, echo_args, order="lifo")
    assert steps_entered(log).count("j") == 1
    assert state.status == "completed"


def test_the_engine_never_changes_the_event_it_is_handed() -> None:
    """A loop step whose `set` cannot be evaluated turns the report into a call.error: in the
    decision's own first event (what is recorded), never in the caller's event."""
    playbook = load_playbook_text("""
metadata: {name: bad_set}
workflow:
  - step: start
    loop: {in: [1, 2], iterator: n}
    tool: {kind: noop}
    set: {ctx.x: "{{ 1 / 0 }}"}
""").require()
    engine = Engine(playbook)
    state = ExecutionState()
    [command] = engine.start(state, execution_id="1").commands
    report = Event("1", ev.CALL_DONE, node_name="start", status="completed", result={"ok": 1},
                   meta={"loop_index": command.loop_index, "command_id": command.command_id})
    before = (report.event_type, report.status, report.result, report.error, dict(report.meta))
    decision = engine.handle(state, report)
    assert (report.event_type, report.status, report.result, report.error, report.meta) == before
    recorded = decision.events[0]
    assert recorded is not report and recorded.event_type == ev.CALL_ERROR
    assert recorded.error is not None and recorded.error["kind"] == "template"


def test_an_events_own_copy_has_every_field_and_its_own_meta() -> None:
    import dataclasses

    from noetl.engine.events import Event

    values = {f.name: f"value of {f.name}" for f in dataclasses.fields(Event)}
    values["meta"] = {"attempt": 1}
    original = Event(**values)
    copied = original.own_copy()
    assert copied == original
    copied.meta["attempt"] = 2
    assert original.meta == {"attempt": 1}


LOOP_CONTROLS = """
metadata: {name: controls}
workload: {rows: [{n: 3, k: b}, {n: 1, k: null}, {n: 5, k: a}, {n: 2, k: c}]}
workflow:
  - step: start
    loop: {in: "{{ workload.rows }}", iterator: row, where: WHERE, order_by: ORDER, limit: LIMIT}
    tool: {kind: noop}
"""


def _loop_elements(where: str = "null", order: str = "null", limit: str = "null") -> list[Any]:
    text = LOOP_CONTROLS.replace("WHERE", where).replace("ORDER", order).replace("LIMIT", limit)
    state, log, issued = drive(text, lambda c: (True, None))
    assert state.status == "completed", state.error
    return [c.context["row"]["n"] for c in issued]


@pytest.mark.parametrize(("where", "order", "limit", "elements"), [
    ("null", "null", "null", [3, 1, 5, 2]),
    ('"{{ row.n > 1 }}"', "null", "null", [3, 5, 2]),
    ('"{{ iter.row.n > 1 }}"', '"{{ row.n }}"', "null", [2, 3, 5]),
    ("null", '"{{ row.k }}"', "null", [5, 3, 2, 1]),  # a null key sorts last, the rest stay stable
    ("null", '"{{ -row.n }}"', "2", [5, 3]),
    ("null", "null", "0", []),
])
def test_loop_where_order_by_and_limit_choose_the_elements(where: str, order: str, limit: str,
                                                          elements: list[int]) -> None:
    assert _loop_elements(where, order, limit) == elements


def test_loop_order_by_keys_that_cannot_be_compared_fail_the_step_naming_the_field() -> None:
    text = LOOP_CONTROLS.replace("WHERE", "null").replace("ORDER", '"{{ row.k or row.n }}"').replace("LIMIT", "null")
    state, _, _ = drive(text, lambda c: (True, None))
    assert state.status == "failed"
    assert "loop.order_by: the keys cannot be ordered (int and str)" in str(state.error)


def test_a_negative_literal_loop_limit_is_invalid() -> None:
    text = LOOP_CONTROLS.replace("WHERE", "null").replace("ORDER", "null").replace("LIMIT", "-1")
    assert "limit must be at least 0" in str(load_playbook_text(text).problems)


def test_loop_chunk_groups_the_chosen_elements_into_lists() -> None:
    text = LOOP_CONTROLS.replace("WHERE", "null").replace("ORDER", '"{{ row.n }}"').replace("LIMIT", "null")
    text = text.replace("limit: null}", "limit: null, chunk: 3}")
    state, _, issued = drive(text, lambda c: (True, None))
    assert state.status == "completed"
    assert [[r["n"] for r in c.context["row"]] for c in issued] == [[1, 2, 3], [5]]
