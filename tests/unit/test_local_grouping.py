"""The local runtime stores the decisions of steps without side effects in groups; every other tool
runs only after everything decided before it is stored (docs/performance.md)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import noetl
from noetl.engine.commands import Command
from noetl.runtime.effect_free import effect_free

# s0 and s1 cannot have effects; s2 reads the store file the run writes, as any tool with effects
# could (a database the next process reads, an HTTP call a service logs).
CHAIN = """
metadata: {name: grouped}
workload: {db: DB}
workflow:
  - step: s0
    tool: {kind: python, code: "result = 1"}
    next: [{step: s1}]
  - step: s1
    tool: {kind: noop}
    next: [{step: s2}]
  - step: s2
    tool:
      kind: python
      input: {db: "{{ workload.db }}"}
      code: |
        import sqlite3
        with sqlite3.connect(db) as con:
            rows = con.execute("SELECT node_name, event_type FROM event_log ORDER BY event_id").fetchall()
        result = [f"{step}:{kind}" for step, kind in rows if step]
    next: [{step: s3}]
  - step: s3
    tool: {kind: python, code: "result = 3"}
"""


def test_a_tool_with_effects_runs_after_every_earlier_decision_is_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_HOME", str(tmp_path))
    doc = noetl.run(CHAIN.replace("DB", str(tmp_path / "noetl.db")))
    assert doc["status"] == "completed", doc
    assert doc["steps"]["s2"]["result"] == [
        "s0:step.enter", "s0:call.done", "s0:step.exit",
        "s1:step.enter", "s1:call.done", "s1:step.exit",
        "s2:step.enter",
    ]
    with sqlite3.connect(tmp_path / "noetl.db") as con:
        stored = [row[0] for row in con.execute("SELECT event_type FROM event_log ORDER BY event_id")]
    # the held decisions of s3 are stored too, in order, with the end of the run
    assert stored[-5:] == ["step.enter", "call.done", "step.exit", "workflow.completed", "playbook.completed"]
    assert len(stored) == 2 + 4 * 3 + 2


def _command(*tasks: dict[str, Any], **fields: Any) -> Command:
    return Command(command_id="e/s/1", execution_id="e", step="s", tasks=list(tasks), context={}, **fields)


@pytest.mark.parametrize("task", [
    {"kind": "noop"},
    {"kind": "noop", "result": {"a": "{{ workload.a }}"}},
    {"kind": "python", "code": "result = a + 1", "input": {"a": 1}},
    {"kind": "python", "isolation": "inline", "code": "print(len(items))\nresult = sorted(items)"},
])
def test_noop_and_brief_python_code_are_effect_free(task: dict[str, Any]) -> None:
    assert effect_free(_command(task))


@pytest.mark.parametrize("task", [
    {"kind": "python", "code": "import os\nresult = os.getpid()"},
    {"kind": "python", "code": "result = [x for x in items]"},
    {"kind": "python", "code": "result = 1", "libs": {"j": "json"}},
    {"kind": "python", "code": "result = 1", "isolation": "process"},
    {"kind": "python", "code": "result = 1", "env": {"A": "1"}},
    {"kind": "python", "code": "result = 1", "spec": {"policy": {"rules": []}}},
    {"kind": "python", "code": "result = 1", "output": {"store": "kv"}},
    {"kind": "python", "code": "result = sorted(items, key=exec)"},
    {"kind": "python", "code": "result = len(x)", "input": {"len": 1}},  # an input named like the call
    {"kind": "python", "script": {"uri": "file://x.py"}},
    {"kind": "shell", "cmds": ["true"]},
    {"kind": "http", "url": "http://localhost/"},
    {"kind": "playbook", "path": "child"},
])
def test_other_tasks_are_not_effect_free(task: dict[str, Any]) -> None:
    assert not effect_free(_command(task))


def test_loop_iterations_cursor_frames_and_time_limits_are_not_effect_free() -> None:
    noop = {"kind": "noop"}
    assert not effect_free(_command(noop, loop_index=0))
    assert not effect_free(_command(noop, cursor={"claim": "x"}))
    assert not effect_free(_command(noop, timeout=5.0))
    assert not effect_free(_command(noop, {"kind": "shell", "cmds": ["true"]}))
    assert effect_free(_command(noop, {"kind": "python", "code": "result = 2"}))

