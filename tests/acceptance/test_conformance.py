"""Every shared conformance case, through the `noetl` command, compared as its README says.

Each case also checks that folding the stored event log from scratch (`noetl status`) gives the
same status document as the live run printed, and that running the case again (its playbook taken
from the cache of validated playbooks) gives the same outcome.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import CONFORMANCE

CASES = sorted(p.stem for p in CONFORMANCE.glob("*.yaml"))


def check_outcome(doc: dict[str, Any], exit_code: int, expect: dict[str, Any]) -> None:
    assert exit_code == expect["exit"], doc
    assert doc["status"] == expect["status"], doc
    for step, value in (expect.get("steps") or {}).items():
        assert doc["steps"][step]["result"] == value, (step, doc["steps"].get(step))
    if "result" in expect:
        assert doc["result"] == expect["result"]
    for step in expect.get("ran", []):
        assert step in doc["completed_steps"], step
    for step in expect.get("not_ran", []):
        assert step not in doc["completed_steps"], step
    if "error_contains" in expect:
        errors = [doc.get("error") or ""] + [json.dumps(s.get("error")) for s in doc["steps"].values()]
        assert any(expect["error_contains"] in e for e in errors), doc
    if "warning_contains" in expect:
        assert any(expect["warning_contains"] in json.dumps(w) for w in doc["warnings"]), doc


def test_cases_are_present() -> None:
    assert len(CASES) >= 18


@pytest.mark.parametrize("case", CASES)
def test_conformance_case(case: str, noetl, noetl_home: Path) -> None:  # type: ignore[no-untyped-def]
    expect = json.loads((CONFORMANCE / f"{case}.expect.json").read_text())
    result = noetl("run", str(CONFORMANCE / f"{case}.yaml"), "--json", *expect.get("args", []))
    doc = result.json()
    check_outcome(doc, result.code, expect)
    replayed = noetl("status", doc["execution_id"], "--json")
    assert replayed.code == 0
    assert replayed.json() == doc
    # Run again, as users mostly do: the playbook now comes from the cache of validated playbooks.
    assert list((noetl_home / "cache" / "playbooks").glob("*.json")), "the first run cached the playbook"
    again = noetl("run", str(CONFORMANCE / f"{case}.yaml"), "--json", *expect.get("args", []))
    check_outcome(again.json(), again.code, expect)


def test_run_json_prints_exactly_one_document(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = noetl("run", str(CONFORMANCE / "default_arc.yaml"), "--json")
    assert result.stdout.count("\n") == 1
    doc = json.loads(result.stdout)
    assert set(doc) == {"execution_id", "path", "status", "completed", "failed", "current_step",
                        "completed_steps", "steps", "result", "error", "parent_execution_id", "started_at",
                        "ended_at", "duration_seconds", "warnings"}
