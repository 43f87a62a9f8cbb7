"""`noetl resume`, `noetl rerun` and abandoned executions, through the CLI as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .conftest import CliResult

FLAKY_LOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: flaky_loop}
workload: {marker: MARKER}
workflow:
  - step: start
    next: [{step: work}]
  - step: work
    loop:
      in: "{{ range(20) | list }}"
      iterator: n
      spec: {mode: parallel, max_in_flight: 5}
    tool:
      kind: python
      input: {n: "{{ n }}", marker: "{{ workload.marker }}"}
      code: |
        import os
        if n in (3, 7, 11) and not os.path.exists(marker):
            raise RuntimeError(f"item {n} failed")
        result = n * 2
    next: [{step: end}]
  - step: end
    tool: {kind: python, input: {total: "{{ work.stats.success }}"}, code: "result = {'total': total}"}
"""

WAITING_CHAIN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: waiting_chain}
workload: {marker: MARKER, started: STARTED, tag: first}
workflow:
  - step: start
    tool: {kind: python, input: {tag: "{{ workload.tag }}"}, code: "result = {'a': 1, 'tag': tag}"}
    set: {ctx.first: "{{ output.data.a }}"}
    next: [{step: wait}]
  - step: wait
    tool:
      kind: python
      input: {marker: "{{ workload.marker }}", started: "{{ workload.started }}"}
      code: |
        import os, time
        open(started, "w").close()
        while not os.path.exists(marker):
            time.sleep(0.02)
        result = {"waited": True}
    next: [{step: end}]
  - step: end
    tool: {kind: python, input: {f: "{{ ctx.first }}", tag: "{{ start.tag }}"}, code: "result = {'first': f, 'tag': tag}"}
  - step: orphan
    tool: {kind: noop}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    text = text.replace("MARKER", str(tmp_path / "go")).replace("STARTED", str(tmp_path / "started"))
    path.write_text(text)
    return path


def events_of(noetl: Any, execution_id: str) -> list[dict[str, Any]]:
    result = noetl("events", execution_id, "--json")
    assert result.code == 0, result.stderr
    return result.json()  # type: ignore[no-any-return]


def calls_by_segment(events: list[dict[str, Any]], step: str) -> list[int]:
    """How many call reports of ``step`` each run (the first, then every resume) recorded."""
    counts = [0]
    for event in events:
        if event["event_type"] == "execution.resumed":
            counts.append(0)
        elif event["event_type"] in ("call.done", "call.error") and event["node_name"] == step:
            counts[-1] += 1
    return counts


def test_resume_runs_exactly_the_failed_loop_iterations(noetl: Any, tmp_path: Path) -> None:
    playbook = write(tmp_path, "loop.yaml", FLAKY_LOOP)
    first = noetl("run", str(playbook), "--json")
    assert first.code == 1
    doc = first.json()
    assert doc["status"] == "failed" and "3 of 20 iterations failed" in doc["error"]
    execution_id = doc["execution_id"]

    (tmp_path / "go").touch()
    resumed = noetl("resume", execution_id, "--json")
    assert resumed.code == 0, resumed.stderr
    doc = resumed.json()
    assert doc["execution_id"] == execution_id
    assert doc["status"] == "completed" and doc["result"] == {"total": 20}
    assert doc["steps"]["work"]["result"]["results"] == [n * 2 for n in range(20)]

    events = events_of(noetl, execution_id)
    assert calls_by_segment(events, "work") == [20, 3]
    rerun_indexes = sorted(e["meta"]["loop_index"] for e in events[[e["event_type"] for e in events].index(
        "execution.resumed"):] if e["event_type"] == "call.done" and e["node_name"] == "work")
    assert rerun_indexes == [3, 7, 11]
    assert calls_by_segment(events, "start") == [1, 0]  # completed steps are kept
    # Folding the whole log from scratch gives the document the resume printed.
    assert noetl("status", execution_id, "--json").json() == doc


def test_a_second_resume_keeps_what_the_first_resume_completed(noetl: Any, tmp_path: Path) -> None:
    playbook = write(tmp_path, "loop.yaml", FLAKY_LOOP)
    execution_id = noetl("run", str(playbook), "--json").json()["execution_id"]
    again = noetl("resume", execution_id, "--json")
    assert again.code == 1 and again.json()["status"] == "failed"
    # The progress counts the iterations the resume kept, and points errors at the file's line.
    assert "> work (loop of 20, 17 kept)" in again.stderr
    assert "work: 20/20 (3 failed)" in again.stderr and "work: 3/20" not in again.stderr
    assert f"work[3]: RuntimeError: item 3 failed\n      at {playbook}:20" in again.stderr
    (tmp_path / "go").touch()
    assert noetl("resume", execution_id, "--json").json()["status"] == "completed"
    assert calls_by_segment(events_of(noetl, execution_id), "work") == [20, 3, 3]


def test_resume_refuses_running_completed_and_unknown_executions(noetl: Any, tmp_path: Path) -> None:
    (tmp_path / "go").touch()
    playbook = write(tmp_path, "chain.yaml", WAITING_CHAIN)
    execution_id = noetl("run", str(playbook), "--json").json()["execution_id"]
    before = events_of(noetl, execution_id)
    refused = noetl("resume", execution_id)
    assert refused.code == 2
    assert refused.stderr.strip() == (f"error: execution {execution_id} is completed: only a failed, "
                                      f"cancelled or abandoned execution can be resumed")
    assert events_of(noetl, execution_id) == before
    unknown = noetl("resume", "12345")
    assert unknown.code == 2 and "execution 12345 not found" in unknown.stderr
    assert "Traceback" not in unknown.stderr + refused.stderr


def start_run(playbook: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NOETL_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "run", str(playbook), "--json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"noetl run ended early with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_kill_9_of_noetl_run_is_recorded_as_abandoned_and_resume_continues_it(
        noetl: Any, noetl_home: Path, tmp_path: Path) -> None:
    playbook = write(tmp_path, "chain.yaml", WAITING_CHAIN)
    proc = start_run(playbook, noetl_home)
    wait_for(tmp_path / "started", proc)
    ids = _running_ids(noetl)
    assert len(ids) == 1
    execution_id = ids[0]
    assert noetl("status", execution_id, "--json").json()["status"] == "running"  # its owner is alive
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    status = noetl("status", execution_id, "--json")
    assert status.code == 0
    doc = status.json()
    assert doc["status"] == "failed" and doc["error"].startswith("abandoned")
    # the step its dead process was running stopped with it, as the console shows it (SPEC 10)
    assert doc["current_step"] is None and doc["steps"]["wait"]["status"] == "cancelled"
    last = events_of(noetl, execution_id)[-1]
    assert last["event_type"] == "playbook.failed" and last["error"]["kind"] == "abandoned"

    (tmp_path / "go").touch()
    resumed = noetl("resume", execution_id, "--json")
    assert resumed.code == 0, resumed.stderr
    doc = resumed.json()
    assert doc["status"] == "completed" and doc["result"] == {"first": 1, "tag": "first"}
    assert doc["completed_steps"] == ["start", "wait", "end"]
    assert calls_by_segment(events_of(noetl, execution_id), "start") == [1, 0]


def test_noetl_executions_lists_a_killed_run_as_failed_as_status_shows_it(
        noetl: Any, noetl_home: Path, tmp_path: Path) -> None:
    # An operator lists executions first: a run whose process died must not stay "running" there
    # while `noetl status` of the same id says failed (abandoned).
    proc, execution_id = _start_waiting_chain(noetl, noetl_home, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    listed = noetl("executions", "--json")
    assert listed.code == 0, listed.stderr
    assert [(r["execution_id"], r["status"]) for r in listed.json()] == [(execution_id, "failed")]
    assert noetl("executions", "--status", "running", "--json").json() == []
    assert noetl("status", execution_id, "--json").json()["status"] == "failed"


def test_watchers_of_a_run_whose_process_dies_end_with_it(noetl: Any, noetl_home: Path, tmp_path: Path) -> None:
    # `status --watch` and `logs --follow` waited forever for the end of a run killed with -9.
    proc, execution_id = _start_waiting_chain(noetl, noetl_home, tmp_path)
    env = {**os.environ, "NOETL_HOME": str(noetl_home)}
    watchers = [subprocess.Popen([sys.executable, "-m", "noetl.cli.main", *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
                for args in (("logs", execution_id, "--follow"), ("status", execution_id, "--watch"))]
    first_line = watchers[1].stderr.readline()  # type: ignore[union-attr]
    assert first_line.startswith(f"execution {execution_id} started"), first_line  # it follows the run
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (_, logs_err), (status_out, status_err) = (watcher.communicate(timeout=60) for watcher in watchers)
    assert watchers[1].returncode == 1, status_err
    assert f"execution {execution_id} failed" in status_err and "error: abandoned: the process" in status_out
    assert watchers[0].returncode == 0, logs_err


def _start_waiting_chain(noetl: Any, noetl_home: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    """`noetl run` of WAITING_CHAIN, once its waiting step has started: the process and the id."""
    proc = start_run(write(tmp_path, "chain.yaml", WAITING_CHAIN), noetl_home)
    wait_for(tmp_path / "started", proc)
    return proc, _running_ids(noetl)[0]


def _running_ids(noetl: Any) -> list[str]:
    result: CliResult = noetl("query", "SELECT execution_id FROM execution WHERE status = 'running'",
                              "--format", "json")
    assert result.code == 0, result.stderr
    return [str(row["execution_id"]) for row in result.json()]


def test_rerun_from_a_step_reuses_the_steps_before_it(noetl: Any, tmp_path: Path) -> None:
    (tmp_path / "go").touch()
    playbook = write(tmp_path, "chain.yaml", WAITING_CHAIN)
    original = noetl("run", str(playbook), "--json").json()
    rerun = noetl("rerun", original["execution_id"], "--from", "end", "--set", "tag=second", "--json")
    assert rerun.code == 0, rerun.stderr
    doc = rerun.json()
    assert doc["execution_id"] != original["execution_id"]
    assert doc["status"] == "completed"
    assert doc["result"] == {"first": 1, "tag": "first"}  # start's result (and its ctx write) are reused
    assert doc["steps"]["start"] == {"status": "completed", "result": {"a": 1, "tag": "first"}, "reused": True}
    events = events_of(noetl, doc["execution_id"])
    assert [e["node_name"] for e in events if e["event_type"] == "step.reused"] == ["start", "wait"]
    assert [e["node_name"] for e in events if e["event_type"] == "step.enter"] == ["end"]
    assert events[0]["meta"]["rerun_of"] == original["execution_id"]
    assert events[0]["result"]["tag"] == "second"

    whole = noetl("rerun", original["execution_id"], "--set", "tag=third", "--json").json()
    assert whole["status"] == "completed" and whole["result"] == {"first": 1, "tag": "third"}


def test_rerun_from_a_missing_or_unreachable_step_is_refused(noetl: Any, tmp_path: Path) -> None:
    (tmp_path / "go").touch()
    playbook = write(tmp_path, "chain.yaml", WAITING_CHAIN)
    execution_id = noetl("run", str(playbook), "--json").json()["execution_id"]
    missing = noetl("rerun", execution_id, "--from", "nope")
    assert missing.code == 2
    assert missing.stderr.strip() == ("error: --from 'nope': waiting_chain has no step of that name "
                                      "(steps: start, wait, end, orphan)")
    unreachable = noetl("rerun", execution_id, "--from", "orphan")
    assert unreachable.code == 2
    assert unreachable.stderr.strip() == "error: --from 'orphan': not reachable from the entry step 'start'"
    assert noetl("query", "SELECT count(*) AS n FROM execution", "--format", "json").json() == [{"n": 1}]


def test_a_cancelled_execution_resumes_at_the_step_that_was_running(
        noetl: Any, noetl_home: Path, tmp_path: Path) -> None:
    proc, execution_id = _start_waiting_chain(noetl, noetl_home, tmp_path)
    assert noetl("cancel", execution_id).code == 0
    assert proc.wait(timeout=30) == 1
    assert noetl("status", execution_id, "--json").json()["status"] == "cancelled"

    (tmp_path / "go").touch()
    resumed = noetl("resume", execution_id, "--json")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["result"] == {"first": 1, "tag": "first"}
    events = events_of(noetl, execution_id)
    after = [e for e in events[[e["event_type"] for e in events].index("execution.resumed"):]
             if e["event_type"] == "step.enter"]
    assert [e["node_name"] for e in after] == ["wait", "end"]


def test_a_resumed_loop_aggregate_by_reference_reads_kept_and_rerun_iterations(noetl: Any, tmp_path: Path) -> None:
    text = FLAKY_LOOP.replace("      spec: {mode: parallel, max_in_flight: 5}\n",
                              "      spec: {mode: parallel, max_in_flight: 5}\n    output: {inline_max_items: 5}\n")
    text = text.replace('''input: {total: "{{ work.stats.success }}"}, code: "result = {'total': total}"''',
                        '''input: {total: "{{ work.stats.success }}", all: "{{ work.results }}", seven: "{{ work.results[7] }}"},
          code: "result = {'total': total, 'all': all, 'seven': seven}"''')
    first = noetl("run", str(write(tmp_path, "flaky.yaml", text)), "--json")
    execution_id = first.json()["execution_id"]
    assert first.json()["status"] == "failed"
    (tmp_path / "go").touch()
    resumed = noetl("resume", execution_id, "--json")
    assert resumed.code == 0, resumed.stderr
    doc = resumed.json()
    assert doc["status"] == "completed", doc["error"]
    # Kept iterations are read from the first entry's reports, re-run ones from the second entry's.
    assert doc["result"] == {"total": 20, "all": [n * 2 for n in range(20)], "seven": 14}
    assert doc["steps"]["work"]["result"]["results"]["_ref"]["uri"].endswith("/2/work")
    assert noetl("result", execution_id, "work", "--index", "3").json() == 6
    assert noetl("result", execution_id, "work", "--index", "4").json() == 8
    # execution.resumed names the kept iterations without copying their results (but the preview's).
    (event,) = [e for e in events_of(noetl, execution_id) if e["event_type"] == "execution.resumed"]
    kept = event["meta"]["steps"][0]["kept_iterations"]
    assert len(kept) == 17 and kept["0"] == 0 and kept["2"] == 4 and kept["4"] is None


RESULT_IN_INPUT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: result_in_input}
workload: {marker: MARKER}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'v': 5}"}
    next: [{step: work}]
  - step: work
    input: {v: "{{ result.v }}", marker: "{{ workload.marker }}"}
    tool:
      kind: python
      code: |
        import os
        if not os.path.exists(marker):
            raise RuntimeError("not yet")
        result = {'v': v}
"""


def test_a_resumed_step_reads_result_of_the_step_that_scheduled_it(noetl: Any, tmp_path: Path) -> None:
    playbook = write(tmp_path, "result_in_input.yaml", RESULT_IN_INPUT)
    failed = noetl("run", str(playbook), "--json")
    assert failed.json()["status"] == "failed"
    (tmp_path / "go").touch()
    resumed = noetl("resume", failed.json()["execution_id"], "--json").json()
    assert resumed["status"] == "completed"
    assert resumed["steps"]["work"]["result"] == {"v": 5}


SECRET_THEN_FLAKY = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: secret_then_flaky}
workflow:
  - step: start
    tool: {kind: secrets, provider: env, name: RECOVERY_TEST_TOKEN}
    next: [{step: use}]
  - step: use
    tool:
      kind: python
      input: {token: "{{ start.value }}", marker: MARKER, out: STARTED}
      code: |
        import os
        if not os.path.exists(marker):
            raise RuntimeError("not yet")
        with open(out, "w") as handle:
            handle.write(token)
        result = {"length": len(token)}
"""


def test_a_resumed_step_reads_a_secret_an_earlier_step_returned(noetl: Any, tmp_path: Path) -> None:
    """The log holds the secret step's result as `***`; the resumed run still hands the next step
    the secret itself, and nothing stored shows it."""
    token = "s3cr3t-token-for-resume-0123456789"
    env = {"RECOVERY_TEST_TOKEN": token}
    playbook = write(tmp_path, "secret_then_flaky.yaml", SECRET_THEN_FLAKY)
    failed = noetl("run", str(playbook), "--json", env=env)
    assert failed.json()["status"] == "failed", failed.stdout
    (tmp_path / "go").touch()
    resumed = noetl("resume", failed.json()["execution_id"], "--json", env=env)
    assert resumed.json()["status"] == "completed", resumed.stdout
    assert (tmp_path / "started").read_text() == token
    assert resumed.json()["steps"]["use"]["result"] == {"length": len(token)}
    events = noetl("events", failed.json()["execution_id"], "--json")
    assert token not in events.stdout + resumed.stdout and "***" in events.stdout


def test_a_resumed_step_that_returns_an_earlier_steps_secret_stores_it_redacted(noetl: Any, tmp_path: Path) -> None:
    """The secrets step does not run again on resume, so the resumed run learns its value from the
    log: the step that echoes it is stored as `***`, not in plain text."""
    token = "s3cr3t-token-echoed-on-resume-0123"
    env = {"RECOVERY_TEST_TOKEN": token}
    playbook = write(tmp_path, "secret_then_echo.yaml",
                     SECRET_THEN_FLAKY.replace('result = {"length": len(token)}', 'result = {"echo": token}'))
    failed = noetl("run", str(playbook), "--json", env=env)
    assert failed.json()["status"] == "failed", failed.stdout
    (tmp_path / "go").touch()
    resumed = noetl("resume", failed.json()["execution_id"], "--json", env=env)
    assert resumed.json()["steps"]["use"]["result"] == {"echo": "***"}, resumed.stdout
    assert (tmp_path / "started").read_text() == token
    events = noetl("events", failed.json()["execution_id"], "--json")
    assert token not in events.stdout + resumed.stdout
