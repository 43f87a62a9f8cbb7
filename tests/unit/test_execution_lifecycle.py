"""The execution lifecycle both runtimes share (runtime/execution.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from noetl.engine.events import Event
from noetl.engine.state import ExecutionState
from noetl.runtime.execution import cancel_event, final_update, stamp
from noetl.secrets import Redactor


def test_events_of_one_decision_get_distinct_times_in_order_and_are_redacted() -> None:
    redactor = Redactor()
    redactor.add({"hunter2-secret"})
    events = [Event("1", "step.exit", node_name=f"s{i}", result={"token": "hunter2-secret"}) for i in range(3)]
    stamp(events, datetime(2026, 1, 1, tzinfo=UTC), redactor)
    times = [e.created_at for e in events]
    assert times == sorted(times) and len(set(times)) == 3
    assert all(e.result == {"token": "***"} for e in events)


def test_the_final_update_exists_only_once_the_execution_finished() -> None:
    state = ExecutionState(status="running")
    assert final_update(state, None, "t") is None
    state.finished, state.status, state.result = True, "failed", {"partial": 1}
    assert final_update(state, None, "t") == {"status": "failed", "result": None, "error": None, "ended_at": "t"}


def test_a_cancel_is_one_event_with_its_reason() -> None:
    event = cancel_event("7", "parent 6 cancelled")
    assert (event.event_type, event.status, event.error) == (
        "execution.cancelled", "cancelled", {"kind": "cancelled", "message": "parent 6 cancelled"})
