"""`noetl trigger ...` and local firing after `noetl run`, as a user runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SOURCE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: source, path: jobs/source}
workload: {fail: false}
workflow:
  - step: start
    tool:
      kind: python
      input: {fail: "{{ workload.fail }}"}
      code: |
        if fail:
            raise ValueError("asked to fail")
        result = {"rows": 3}
"""
TARGET = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: NAME, path: jobs/NAME}
workflow:
  - step: start
    tool: {kind: python, input: {t: "{{ workload.trigger }}"}, code: "result = t"}
"""


def runs(noetl: Any, path: str) -> list[dict[str, Any]]:
    return [e for e in noetl("executions", "--json").json() if e.get("path") == path]


def test_triggers_fire_once_on_their_status_after_a_local_run(noetl: Any, tmp_path: Path) -> None:
    for name, text in (("source", SOURCE), ("on_ok", TARGET.replace("NAME", "on_ok")),
                       ("on_fail", TARGET.replace("NAME", "on_fail"))):
        (tmp_path / f"{name}.yaml").write_text(text)
        assert noetl("catalog", "register", str(tmp_path / f"{name}.yaml")).code == 0
    added = noetl("trigger", "add", "--on-path", "jobs/source", "--on", "completed", "--run", "jobs/on_ok")
    assert added.code == 0, added.stderr
    assert added.stdout.split() == ["jobs.source:completed:jobs.on_ok", "on", "jobs/source", "completed", "run",
                                    "jobs/on_ok"]  # its line of `trigger list`, not JSON
    assert noetl("trigger", "add", "--on-path", "jobs/source", "--on", "failed", "--run", "jobs/on_fail",
                 "--name", "alert").code == 0
    listed = noetl("trigger", "list", "--json").json()
    assert sorted((t["on"], t["run"]) for t in listed) == [("completed", "jobs/on_ok"), ("failed", "jobs/on_fail")]

    ok = noetl("run", "jobs/source", "--json")
    assert ok.code == 0, ok.stderr
    source_id = ok.json()["execution_id"]
    [fired] = runs(noetl, "jobs/on_ok")
    assert fired["status"] == "completed"
    status = noetl("status", fired["execution_id"], "--json").json()
    assert status["result"]["execution_id"] == source_id and status["result"]["status"] == "completed"
    assert status["result"]["path"] == "jobs/source"
    assert runs(noetl, "jobs/on_fail") == []

    assert noetl("run", "jobs/source", "--payload", '{"fail": true}', "--json").code != 0
    assert len(runs(noetl, "jobs/on_fail")) == 1 and len(runs(noetl, "jobs/on_ok")) == 1

    assert noetl("trigger", "delete", "alert", "--json").json() == {"name": "alert", "deleted": True}
    assert noetl("run", "jobs/source", "--payload", '{"fail": true}', "--json").code != 0
    assert len(runs(noetl, "jobs/on_fail")) == 1


def test_bad_triggers_are_one_line_errors(noetl: Any, tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TARGET.replace("NAME", "t"))
    assert noetl("catalog", "register", str(tmp_path / "t.yaml")).code == 0
    for args, named in [(("--on-path", "a", "--on", "done", "--run", "jobs/t"), "--on"),
                        (("--on-path", "a", "--on", "failed", "--run", "no/such"), "--run"),
                        (("--on-path", "jobs/t", "--on", "failed", "--run", "jobs/t"), "loop")]:
        result = noetl("trigger", "add", *args)
        assert result.code == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and named in result.stderr, result.stderr
    assert noetl("trigger", "delete", "nope").code == 2
    assert noetl("trigger", "list", "--json").json() == []


def test_triggers_that_start_each_other_stop_at_the_cycle(noetl: Any, tmp_path: Path) -> None:
    # ping completes -> pong, pong completes -> ping: without a bound, executions without end.
    for name in ("ping", "pong"):
        (tmp_path / f"{name}.yaml").write_text(TARGET.replace("NAME", name))
        assert noetl("catalog", "register", str(tmp_path / f"{name}.yaml")).code == 0
    for on_path, run in (("jobs/ping", "jobs/pong"), ("jobs/pong", "jobs/ping")):
        assert noetl("trigger", "add", "--on-path", on_path, "--on", "completed", "--run", run).code == 0
    result = noetl("run", "jobs/ping", "--json")
    assert result.code == 0, result.stderr
    assert [e["status"] for e in runs(noetl, "jobs/ping")] == ["completed"]
    assert [e["status"] for e in runs(noetl, "jobs/pong")] == ["completed"]
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert "trigger cycle: jobs/ping -> jobs/pong -> jobs/ping" in result.stderr, result.stderr
