"""Seeing a run from the CLI: progress on a terminal (a real pseudo-terminal), `noetl executions`,
`noetl logs`, `noetl status --watch`."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from acceptance.conftest import run_noetl

CONSOLE = Path(__file__).parent.parent / "console"
LOOP = str(CONSOLE / "loop_failure.yaml")
SLOW = str(CONSOLE / "slow_loop.yaml")


def run_in_terminal(*args: str, home: Path, timeout: float = 60) -> tuple[int, str]:
    """`noetl ARGS` with stdin, stdout and stderr on a pseudo-terminal, as a user at a shell runs it."""
    master, slave = pty.openpty()
    env = {**os.environ, "NOETL_HOME": str(home), "COLUMNS": "160", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", *args], stdin=slave, stdout=slave,
                               stderr=slave, env=env, close_fds=True)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other side closed: the process ended
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    return process.wait(timeout=10), output.decode(errors="replace")


def test_a_failed_loop_on_a_terminal_shows_id_progress_error_line_and_output(tmp_path: Path) -> None:
    code, output = run_in_terminal("run", LOOP, home=tmp_path)
    assert code == 1
    execution_id = run_noetl("executions", "--json", home=tmp_path).json()[0]["execution_id"]
    assert f"execution {execution_id} started (demo/console_loop)" in output
    assert "4/4 (1 failed)" in output
    assert "divide[2]: ZeroDivisionError: division by zero" in output
    assert f"at {LOOP}:23" in output  # code line 2 of the step, as a line of the playbook file
    assert "dividing by 0" in output


def test_piped_json_stays_one_document_and_the_id_goes_to_stderr(noetl) -> None:  # type: ignore[no-untyped-def]
    result = noetl("run", LOOP, "--json")
    doc = json.loads(result.stdout)
    assert result.code == 1 and f"execution {doc['execution_id']} started" in result.stderr
    assert f"at {LOOP}:23" in result.stderr and "3/4 (1 failed)" in result.stderr


def test_executions_listing_filters_and_json(noetl) -> None:  # type: ignore[no-untyped-def]
    failed = json.loads(noetl("run", LOOP, "--json").stdout)["execution_id"]
    done = json.loads(noetl("run", SLOW, "--json", "--set", "pause=0").stdout)["execution_id"]
    table = noetl("executions").stdout.splitlines()
    assert table[0].split() == ["EXECUTION", "STATUS", "STARTED", "DURATION", "PATH"]
    assert table[1].startswith(done) and table[2].startswith(failed)  # newest first, columns aligned
    assert table[1].index("completed") == table[2].index("failed")
    assert [r["execution_id"] for r in noetl("executions", "--status", "failed", "--json").json()] == [failed]
    assert [r["execution_id"] for r in noetl("executions", "--path", "slow", "--json").json()] == [done]
    assert noetl("executions", "--since", "2999-01-01", "--json").json() == []
    assert len(noetl("executions", "--since", "1h", "--limit", "1", "--json").json()) == 1
    bad = noetl("executions", "--since", "soon")
    assert bad.code == 2 and bad.stderr.startswith("error: --since 'soon'")


def test_logs_in_order_with_step_and_loop_index(noetl) -> None:  # type: ignore[no-untyped-def]
    execution_id = json.loads(noetl("run", LOOP, "--json").stdout)["execution_id"]
    lines = noetl("logs", execution_id).stdout.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "divide[0]: dividing by 1", "divide[1]: dividing by 2", "divide[2]: dividing by 0", "divide[3]: dividing by 4"]
    rows = [json.loads(line) for line in noetl("logs", execution_id, "--step", "divide", "--json").stdout.splitlines()]
    assert [(r["step"], r["loop_index"], r["line"]) for r in rows][2] == ("divide", 2, "dividing by 0")
    assert noetl("logs", execution_id, "--step", "start").stdout == ""
    for follow in ((), ("--follow",)):  # a typo is an error, not an empty answer
        typo = noetl("logs", execution_id, "--step", "divid", *follow)
        assert (typo.code, typo.stdout) == (2, ""), typo.stderr
        assert typo.stderr == "error: --step 'divid': demo/console_loop has no step of that name " \
                              "(steps: start, divide, end)\n"
    missing = noetl("logs", "42")
    assert missing.code == 2 and "execution 42 not found" in missing.stderr


GATED = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: gated_loop, path: tests/gated_loop}
workload: {release: ""}
workflow:
  - step: start
    next: [{step: wait}]
  - step: wait
    loop: {in: "{{ range(6) | list }}", iterator: i}
    tool:
      kind: python
      input: {i: "{{ iter.i }}", release: "{{ workload.release }}"}
      code: |
        import os, time
        print("round", i)
        deadline = time.monotonic() + 60
        while i == 5 and time.monotonic() < deadline and not os.path.exists(release):
            time.sleep(0.02)
        result = {"round": i}
    next: [{step: end}]
  - step: end
"""


def test_status_watch_and_logs_follow_wait_for_the_end(noetl_home: Path, tmp_path: Path) -> None:
    # The last round waits for a release file: the execution is still running when both commands
    # attach, whatever the machine's load (a run of fixed pauses could end before they start).
    playbook = tmp_path / "gated.yaml"
    playbook.write_text(GATED)
    release = tmp_path / "release"
    env = {**os.environ, "NOETL_HOME": str(noetl_home)}
    running = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "run", str(playbook), "--set",
                                f"release={release}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        execution_id = _first_running(noetl_home)
        with _noetl_process("status", execution_id, "--watch", env=env) as watch, \
                _noetl_process("logs", execution_id, "--follow", env=env) as follow:
            assert watch.stdout is not None and watch.stderr is not None and follow.stdout is not None
            first_watched = watch.stderr.readline()  # the watch has read the execution's events
            first_followed = follow.stdout.readline()
            assert watch.poll() is None and follow.poll() is None  # both wait while the execution runs
            release.touch()
            # Read on through the same buffered streams: communicate() reads the pipes themselves and
            # would miss what readline() has already buffered.
            watched_err, watched_out, followed = watch.stderr.read(), watch.stdout.read(), follow.stdout.read()
    finally:
        release.touch()
        running.wait(timeout=60)
    assert watch.returncode == 0, watched_err
    assert f"execution {execution_id} started" in first_watched + watched_err and "6/6" in watched_err
    assert f"execution {execution_id} (tests/gated_loop): completed" in watched_out
    assert follow.returncode == 0
    assert [line.split(" ", 2)[2] for line in (first_followed + followed).splitlines()] == [
        f"wait[{i}]: round {i}" for i in range(6)]


def _noetl_process(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`noetl ARGS` with its output on pipes; leaving its ``with`` block waits for it to end."""
    return subprocess.Popen([sys.executable, "-m", "noetl.cli.main", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _first_running(home: Path) -> str:
    deadline = time.monotonic() + 60  # each look is a `noetl` process: seconds apiece on a loaded machine
    while time.monotonic() < deadline:
        rows = run_noetl("executions", "--status", "running", "--json", home=home).json()
        if rows:
            return str(rows[0]["execution_id"])
        time.sleep(0.1)
    raise AssertionError("the execution did not start")
