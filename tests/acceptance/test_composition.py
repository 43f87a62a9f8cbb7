"""Playbooks calling playbooks, through the `noetl` command: files, the catalog with versions,
grandchildren, failures naming the child, cycles, cancellation reaching children."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from support.waiting import gated_loop_playbook, until

from .conftest import run_noetl
from .test_cli import assert_one_line_error

CHILD = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: child, path: lib/child}}
workload: {{x: 1}}
workflow:
  - step: start
    tool: {{kind: python, input: {{x: "{{{{ x }}}}"}}, code: "result = {{'version': {version}, 'x': x}}"}}
    next: {{arcs: [{{step: finish}}]}}
  - step: finish
    tool: {{kind: noop, result: done}}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def parent(call: str) -> str:
    return f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: parent, path: lib/parent}}
workflow:
  - step: start
    tool: {call}
"""


def test_catalog_children_use_the_latest_version_and_pinned_ones(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for version in (1, 2):
        registered = noetl("catalog", "register", str(write(tmp_path / f"v{version}" / "child.yaml",
                                                               CHILD.format(version=version))))
        assert registered.json()[0]["version"] == version
    listing = noetl("catalog", "list", "--json").json()
    assert [(e["path"], e["version"]) for e in listing] == [("lib/child", 2)]
    latest = noetl("run", str(write(tmp_path / "p.yaml", parent(
        "{kind: playbook, path: lib/child, input: {x: 5}, return_step: start}"))), "--json").json()
    assert latest["result"] == {"version": 2, "x": 5}
    pinned = noetl("run", str(write(tmp_path / "p1.yaml", parent(
        "{kind: playbook, path: lib/child, version: 1, return_step: start}"))), "--json").json()
    assert pinned["result"] == {"version": 1, "x": 1}
    direct = noetl("run", "catalog://lib/child@1", "--json").json()
    assert direct["steps"]["start"]["result"]["version"] == 1
    assert "version: 2" not in noetl("catalog", "get", "lib/child", "--version", "1").stdout


def test_grandchildren_and_parent_ids(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "leaf.yaml", CHILD.format(version=7))
    write(tmp_path / "middle.yaml", parent("{kind: playbook, path: leaf.yaml, return_step: start}")
          .replace("name: parent, path: lib/parent", "name: middle, path: lib/middle"))
    top = write(tmp_path / "top.yaml", parent("{kind: playbook, path: middle.yaml}"))
    doc = noetl("run", str(top), "--json").json()
    assert doc["status"] == "completed" and doc["result"] == {"version": 7, "x": 1}
    rows = noetl("query", "SELECT execution_id, path, parent_execution_id FROM execution", "--format", "json").json()
    by_path = {r["path"]: r for r in rows}
    assert str(by_path["lib/middle"]["parent_execution_id"]) == doc["execution_id"]
    assert by_path["lib/child"]["parent_execution_id"] == by_path["lib/middle"]["execution_id"]
    child_doc = noetl("status", str(by_path["lib/middle"]["execution_id"]), "--json").json()
    assert child_doc["parent_execution_id"] == doc["execution_id"]


def test_failures_name_the_child_execution(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "bad_child.yaml", CHILD.format(version="1 / 0"))
    doc = noetl("run", str(write(tmp_path / "p.yaml", parent("{kind: playbook, path: bad_child.yaml}"))),
                "--json").json()
    assert doc["status"] == "failed"
    assert "child playbook 'lib/child' (execution " in doc["error"] and "division by zero" in doc["error"]
    missing_step = noetl("run", str(write(tmp_path / "q.yaml", parent(
        "{kind: playbook, path: bad_child.yaml, return_step: nope}"))), "--json").json()
    assert "return_step 'nope' is not a step of 'lib/child'" in missing_step["error"]


def test_a_cycle_of_playbooks_is_an_error(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "a.yaml", parent("{kind: playbook, path: b.yaml}").replace("lib/parent", "lib/a"))
    write(tmp_path / "b.yaml", parent("{kind: playbook, path: a.yaml}").replace("lib/parent", "lib/b"))
    doc = noetl("run", str(tmp_path / "a.yaml"), "--json").json()
    assert doc["status"] == "failed"
    assert "playbook call cycle: lib/a -> lib/b -> lib/a" in doc["error"]
    selfcall = write(tmp_path / "self.yaml", parent("{kind: playbook, path: self.yaml}"))
    assert "playbook call cycle: lib/parent -> lib/parent" in noetl("run", str(selfcall), "--json").json()["error"]


def test_ambiguous_legacy_forms_are_refused(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    both = write(tmp_path / "both.yaml", """\
metadata: {name: both}
workflow:
  - step: start
    type: python
    code: "result = 1"
    call: {type: playbooks, path: x}
""")
    line = assert_one_line_error(noetl("run", str(both)))
    assert f"{both}:6:5:" in line and "ambiguous" in line and "step 'start'" in line
    entry = write(tmp_path / "entry.yaml", """\
metadata: {name: entry}
workflow:
  - step: start
    next: [{step: a, then: [{step: b}]}]
  - step: a
  - step: b
""")
    assert "ambiguous `next` entry" in assert_one_line_error(noetl("run", str(entry)))


def test_cancelling_a_parent_cancels_its_children(noetl_home: Path, tmp_path: Path) -> None:
    # The child's first iteration waits for the release file (given only after the cancel): both
    # executions are running when the test looks for them, however slowly `noetl run` starts.
    write(tmp_path / "slow_child.yaml", gated_loop_playbook("slow_child", 100, 0.1, path="lib/slow_child",
                                                           release=str(tmp_path / "release")))
    top = write(tmp_path / "top.yaml", parent("{kind: playbook, path: slow_child.yaml}"))
    proc = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "run", str(top), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NOETL_HOME": str(noetl_home)})
    try:
        child_id, parent_id = until("the child execution to start", lambda: _running_child(noetl_home))
        assert run_noetl("cancel", parent_id, home=noetl_home).code == 0
    finally:
        (tmp_path / "release").touch()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and json.loads(out)["status"] == "cancelled"
    child = run_noetl("status", child_id, "--json", home=noetl_home).json()
    assert child["status"] == "cancelled"


def _running_child(home: Path) -> tuple[str, str] | None:
    """A running child execution and its parent, read from the local store."""
    db = home / "noetl.db"
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT execution_id, parent_execution_id FROM execution "
                               "WHERE parent_execution_id IS NOT NULL AND status = 'running'").fetchone()
    except sqlite3.Error:
        return None
    return (str(row[0]), str(row[1])) if row else None


LENIENT_CHILD = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: lenient_child, path: lib/lenient_child}
workflow:
  - step: start
    tool: {kind: noop, result: "value={{ not_defined_anywhere }}"}
"""


def test_a_strict_run_is_strict_in_its_child_playbooks(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "lenient_child.yaml", LENIENT_CHILD)
    caller = write(tmp_path / "p.yaml", parent("{kind: playbook, path: lenient_child.yaml}"))
    lenient = noetl("run", str(caller), "--json").json()
    assert lenient["status"] == "completed" and lenient["result"] == "value="
    strict = noetl("run", str(caller), "--json", "--strict")
    assert strict.code == 1
    assert "'not_defined_anywhere' is undefined" in strict.json()["error"]
