"""Resume and rerun in the pure engine: what runs again, what is kept, and that the fold agrees."""

from __future__ import annotations

from typing import Any

from noetl.dsl.parse import load_playbook_text
from noetl.engine import events as ev
from noetl.engine.commands import Command
from noetl.engine.decide import Decision, Engine
from noetl.engine.events import Event
from noetl.engine.resume import reachable_from, resume_event, reused_steps
from noetl.engine.state import ExecutionState, fold
from noetl.engine.status import status_document

LOOP = """
metadata: {name: loop}
workflow:
  - step: start
    set: {ctx.seen: yes}
    next: [{step: work}]
  - step: work
    loop: {in: "{{ range(6) | list }}", iterator: n, spec: {mode: parallel, max_in_flight: 2}}
    tool: {kind: python, code: "result = n"}
    next: [{step: end}]
  - step: end
  - step: island
"""


def answer_all(engine: Engine, state: ExecutionState, decision: Decision, log: list[Event],
               fails: set[int]) -> list[Command]:
    """Answer every command (loop indexes in ``fails`` fail); return the commands that ran."""
    log.extend(decision.events)
    queue, ran = list(decision.commands), []
    while queue and not state.finished:
        command = queue.pop(0)
        ran.append(command)
        ok = command.loop_index not in fails
        meta: dict[str, Any] = {} if command.loop_index is None else {"loop_index": command.loop_index}
        event = Event("1", ev.CALL_DONE if ok else ev.CALL_ERROR, node_name=command.step,
                      result=(command.loop_index or 0) * 10 if ok else None,
                      error=None if ok else {"kind": "test", "message": "boom"}, meta=meta)
        step = engine.handle(state, event)
        log.extend(step.events)
        queue.extend(step.commands)
    for i, event in enumerate(log, 1):
        event.event_id, event.created_at = i, f"2026-01-01T00:00:{i % 60:02d}+00:00"
    return ran


def test_resume_runs_only_the_failed_iterations_and_the_fold_agrees() -> None:
    playbook = load_playbook_text(LOOP).require()
    engine, state, log = Engine(playbook), ExecutionState(), []
    answer_all(engine, state, engine.start(state, execution_id="1"), log, fails={1, 4})
    assert state.status == "failed"

    resumed = resume_event("1", log)
    assert [s["step"] for s in resumed.meta["steps"]] == ["work"]
    assert sorted(resumed.meta["steps"][0]["kept_iterations"]) == ["0", "2", "3", "5"]
    ran = answer_all(engine, state, engine.handle(state, resumed), log, fails=set())
    assert [(c.step, c.loop_index) for c in ran] == [("work", 1), ("work", 4), ("end", None)]
    assert state.status == "completed"
    assert state.results["work"]["results"] == [0, 10, 20, 30, 40, 50]
    assert state.ctx == {"seen": True}

    replayed = fold(log)
    assert (replayed.status, replayed.results, replayed.ctx) == (state.status, state.results, state.ctx)
    doc = status_document(log)
    assert doc["status"] == "completed" and doc["completed_steps"] == ["start", "work", "end"]


def test_rerun_from_a_step_reuses_what_completed_before_it() -> None:
    playbook = load_playbook_text(LOOP).require()
    engine, state, log = Engine(playbook), ExecutionState(), []
    answer_all(engine, state, engine.start(state, execution_id="1"), log, fails=set())
    reused, _ = reused_steps(log, "work", playbook)
    assert [(e.node_name, e.meta["set"]) for e in reused] == [("start", {"seen": True})]

    engine2, state2, log2 = Engine(playbook), ExecutionState(), []
    decision = engine2.start(state2, execution_id="1", entry_step="work", reused=reused)
    ran = answer_all(engine2, state2, decision, log2, fails=set())
    assert {c.step for c in ran} == {"work", "end"}
    assert state2.ctx == {"seen": True} and state2.status == "completed"
    assert [e.node_name for e in log2 if e.event_type == ev.STEP_REUSED] == ["start"]
    assert status_document(log2)["steps"]["start"]["reused"] is True


def test_reachable_steps_follow_arcs() -> None:
    playbook = load_playbook_text(LOOP).require()
    assert reachable_from(playbook, "start") == {"start", "work", "end"}
    assert reachable_from(playbook, "island") == {"island"}
