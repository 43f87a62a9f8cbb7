"""Recorded event histories replayed through the engine (no I/O).

Two checks per history: folding the log from scratch gives the recorded status document, and
feeding the recorded tool reports to a fresh engine reproduces every recorded event (the engine
is deterministic: same playbook, same reports, same decisions). Re-record with
`python tests/fixtures/histories/record.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from noetl.dsl.parse import load_playbook
from noetl.engine import events as ev
from noetl.engine.decide import Engine
from noetl.engine.events import Event
from noetl.engine.state import ExecutionState, fold
from noetl.engine.status import status_document

TESTS = Path(__file__).parent.parent
HISTORIES = sorted((TESTS / "fixtures" / "histories").glob("*.json"))
EXTERNAL = (ev.CALL_DONE, ev.CALL_ERROR, ev.EXECUTION_CANCELLED)


def load(path: Path) -> tuple[dict[str, Any], list[Event]]:
    data = json.loads(path.read_text())
    return data, [Event.from_dict(e) for e in data["events"]]


def shape(event: Event) -> tuple[Any, ...]:
    return (event.event_type, event.node_name, event.status, json.dumps(event.result, sort_keys=True),
            (event.error or {}).get("message"), json.dumps(event.meta.get("fire"), sort_keys=True))


def test_there_are_histories() -> None:
    assert len(HISTORIES) >= 8


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_fold_gives_the_recorded_status_document(path: Path) -> None:
    data, events = load(path)
    assert status_document(events) == data["status"]
    assert fold(events).status == data["status"]["status"]


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_replaying_reports_reproduces_every_event(path: Path) -> None:
    data, recorded = load(path)
    playbook = load_playbook(str(TESTS / data["playbook"])).require()
    engine = Engine(playbook)
    state = ExecutionState()
    init = recorded[0]
    produced = engine.start(state, execution_id=init.execution_id, payload=init.result,
                            parent_execution_id=init.meta.get("parent_execution_id")).events
    for event in recorded:
        if event.event_type in EXTERNAL:
            produced.extend(engine.handle(state, _as_reported(event)).events)
    assert [shape(e) for e in produced] == [shape(e) for e in recorded]


def _as_reported(event: Event) -> Event:
    """The report as a runtime sends it (the engine stamps ids and times on append)."""
    report = Event.from_dict(event.to_dict())
    report.event_id, report.created_at = 0, ""
    return report


def test_an_execution_that_ended_failed_shows_no_step_running() -> None:
    from noetl.engine.status import status_document

    error = {"kind": "abandoned", "message": "abandoned: the process that ran it (pid 7) ended"}
    doc = status_document([
        Event("e1", ev.PLAYBOOK_INITIALIZED, status="running", created_at="2026-01-01T00:00:00"),
        Event("e1", ev.STEP_ENTER, node_name="wait", status="running", created_at="2026-01-01T00:00:01"),
        Event("e1", ev.PLAYBOOK_FAILED, status="failed", error=error, created_at="2026-01-01T00:00:02"),
    ])
    assert (doc["status"], doc["current_step"], doc["steps"]["wait"]["status"]) == ("failed", None, "cancelled")
