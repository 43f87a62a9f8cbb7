"""Logs streamed while a step runs (`noetl logs`, `--follow`), and a failed step's error at the
playbook file's line (`noetl run`, `noetl status`), on the local runtime, through the real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.waiting import until

from acceptance.conftest import FIXTURES, CliResult, run_noetl

STREAMED = str(FIXTURES / "streamed_logs.yaml")
FAIL_AT_LINE = str(FIXTURES / "fail_at_line.yaml")
TOKEN = "tok-streamed-4f1c9a"  # a secret value: never stored, in a log line either


def _running_id(home: Path) -> str | None:
    rows = run_noetl("executions", "--status", "running", "--json", home=home).json()
    return str(rows[0]["execution_id"]) if rows else None


def _lines(result: CliResult) -> list[str]:
    return [line.split(" ", 2)[2] for line in result.stdout.splitlines()]


def test_a_running_steps_print_output_is_in_noetl_logs_before_it_ends(noetl_home: Path, tmp_path: Path) -> None:
    release = tmp_path / "release"
    env = {**os.environ, "NOETL_HOME": str(noetl_home), "NOETL_SECRET_STREAM_TOKEN": TOKEN}
    stderr = (tmp_path / "run.err").open("w")
    running = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "run", STREAMED, "--set",
                                f"release={release}"], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        execution_id = until("the execution to start", lambda: _running_id(noetl_home))
        seen = until("tick 1 in noetl logs", lambda: (lambda r: r if "start: tick 1" in r.stdout else None)(
            run_noetl("logs", execution_id, home=noetl_home)))
        # The step is still waiting for the release file: nothing after `tick 1` can be there yet.
        assert run_noetl("status", execution_id, "--json", home=noetl_home).json()["status"] == "running"
        assert _lines(seen) == ["start: tick 1", "start: token ***", "start: warned"]
        assert TOKEN not in seen.stdout
        follower = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "logs", execution_id, "--follow",
                                     "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        release.touch()
        assert running.wait(timeout=60) == 0, (tmp_path / "run.err").read_text()
        followed, _ = follower.communicate(timeout=60)
    finally:
        release.touch()
        running.wait(timeout=60)
        stderr.close()
    rows = [json.loads(line) for line in followed.splitlines()]
    assert [(r["step"], r["stream"], r["line"]) for r in rows] == [
        ("start", "stdout", "tick 1"), ("start", "stdout", "token ***"), ("start", "stderr", "warned"),
        ("start", "stdout", "tick 2"), ("shell", "stdout", "from-shell"), ("shell", "stderr", "shell-error")]
    # Once the run is over each line is printed once, though the call's event keeps its own copy.
    after = run_noetl("logs", execution_id, home=noetl_home)
    assert _lines(after) == [f"{r['step']}: {r['line']}" for r in rows]
    assert _lines(run_noetl("logs", execution_id, "--step", "shell", home=noetl_home)) == [
        "shell: from-shell", "shell: shell-error"]
    events = run_noetl("events", execution_id, "--json", home=noetl_home).stdout
    assert TOKEN not in events and TOKEN not in after.stdout


def test_a_chatty_step_stores_at_most_the_cap_and_says_how_much_was_dropped(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chatty = tmp_path / "chatty.yaml"
    chatty.write_text("""apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: chatty}
workflow:
  - step: start
    tool:
      kind: python
      code: |
        for i in range(5000):
            print(f"line {i:04d}")
""")
    doc = noetl("run", str(chatty), "--json", env={"NOETL_LOG_MAX_BYTES": "1000"}).json()
    lines = _lines(noetl("logs", doc["execution_id"]))
    assert lines[:2] == ["start: line 0000", "start: line 0001"]
    assert len(lines) == 1000 // len("line 0000\n") + 1
    assert lines[-1] == f"start: [truncated: {5000 * 10 - 1000} bytes dropped]"


def test_a_failed_python_step_names_the_playbook_file_line(noetl) -> None:  # type: ignore[no-untyped-def]
    run = noetl("run", FAIL_AT_LINE)
    assert run.code == 1
    assert f"at {FAIL_AT_LINE}:12" in run.stderr
    execution_id = noetl("executions", "--json").json()[0]["execution_id"]
    status = noetl("status", execution_id)
    assert f"    at {FAIL_AT_LINE}:12: step 'start' (python) failed: ValueError: total is 3" in status.stdout.splitlines()
    doc = noetl("status", execution_id, "--json").json()
    assert doc["steps"]["start"]["error"]["playbook_line"] == 12
    watched = noetl("status", execution_id, "--watch")
    assert watched.code == 1 and f"at {FAIL_AT_LINE}:12" in watched.stderr


def test_noetl_run_ends_when_a_shell_step_leaves_a_background_process(noetl_home: Path, tmp_path: Path) -> None:
    playbook = tmp_path / "background.yaml"
    playbook.write_text("""apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: background, path: demo/background}
workflow:
  - step: start
    tool: {kind: shell, command: "sleep 300 & echo started"}
""")
    result = run_noetl("run", str(playbook), "--json", home=noetl_home)  # bounded: a hang fails the test
    assert result.code == 0, result.stderr
    assert result.json()["steps"]["start"]["status"] == "completed"
