"""The `noetl` command as a user meets it: arguments, bad input, inspection, migration, cancel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.waiting import gated_loop_playbook, until

from noetl.errors import InputError

from .conftest import CONFORMANCE, FIXTURES, run_noetl

GOOD = CONFORMANCE / "default_arc.yaml"

PARAMS = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: params}
workload: {n: 1, db: {host: h, port: 1}, label: x}
workflow:
  - step: start
    tool:
      kind: python
      input: {n: "{{ n }}", db: "{{ db }}", label: "{{ label }}"}
      code: "result = {'n': n, 'n_type': type(n).__name__, 'db': db, 'label': label}"
"""


def assert_one_line_error(result, code: int = 2) -> str:  # type: ignore[no-untyped-def]
    assert result.code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_malformed_yaml(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("metadata: {name: x}\nworkflow:\n  - step: a\n   oops: [\n")
    line = assert_one_line_error(noetl("run", str(bad)))
    assert f"{bad}:" in line and "invalid YAML" in line


def test_unknown_tool_kind_names_file_line_col(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "kind.yaml"
    bad.write_text(GOOD.read_text().replace("kind: python", "kind: pyhton"))
    line = assert_one_line_error(noetl("run", str(bad)))
    assert f"{bad}:7:5:" in line and "unknown tool kind 'pyhton'" in line and "did you mean 'python'" in line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--payload", "[1, 2]"], "the payload must be a JSON object"),
        (["--payload", "{oops"], "invalid JSON"),
        (["--payload", "@/no/such/file.json"], "cannot read file"),
        (["--set", "novalue"], "expected key=value"),
    ],
)
def test_bad_arguments(noetl, args: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert fragment in assert_one_line_error(noetl("run", str(GOOD), *args))


def test_missing_file_and_unknown_ids(noetl) -> None:  # type: ignore[no-untyped-def]
    assert "file not found" in assert_one_line_error(noetl("run", "/no/such/playbook.yaml"))
    assert "not found" in assert_one_line_error(noetl("status", "12345"))
    assert "not found" in assert_one_line_error(noetl("events", "12345"))
    assert "no catalog entry" in assert_one_line_error(noetl("run", "catalog://no/such/path"))


def test_set_values_are_yaml_scalars_and_dotted(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pb = tmp_path / "params.yaml"
    pb.write_text(PARAMS)
    doc = noetl("run", str(pb), "--json", "--payload", '{"n": 5}', "--set", "n=10", "--set", "label='10'",
                "--set", "db.port=5432").json()
    assert doc["result"] == {"n": 10, "n_type": "int", "db": {"port": 5432}, "label": "10"}
    merged = noetl("run", str(pb), "--json", "--merge", "--set", "db.port=6").json()
    assert merged["result"]["db"] == {"host": "h", "port": 6}
    payload_file = tmp_path / "payload.json"
    payload_file.write_text('{"label": "from file"}')
    assert noetl("run", str(pb), "--json", "--payload", f"@{payload_file}").json()["result"]["label"] == "from file"


def test_validate_reports_and_strict(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ok = noetl("validate", str(GOOD))
    assert ok.code == 0 and "ok" in ok.stdout
    typo = tmp_path / "typo.yaml"
    typo.write_text(GOOD.read_text().replace("    next:", "    nxt: 1\n    next:", 1))
    warned = noetl("validate", str(typo))
    assert warned.code == 0 and "did you mean 'next'" in warned.stderr
    strict = noetl("validate", "--strict", str(typo))
    assert strict.code == 2
    assert noetl("run", str(typo), "--json").code == 0  # warnings never stop a run


def test_schema_is_json_schema(noetl) -> None:  # type: ignore[no-untyped-def]
    schema = noetl("schema").json()
    assert schema["title"] == "NoETL playbook" and "workflow" in schema["properties"]


@pytest.mark.parametrize("legacy", [CONFORMANCE / "v1_next_with.yaml", CONFORMANCE / "case_era_routing.yaml",
                                    FIXTURES / "v1_forms.yaml"], ids=lambda p: p.stem)
def test_migrated_playbook_behaves_like_the_original(noetl, tmp_path: Path, legacy: Path) -> None:  # type: ignore[no-untyped-def]
    migrated = noetl("migrate", str(legacy))
    assert migrated.code == 0, migrated.stderr
    target = tmp_path / legacy.name
    target.write_text(migrated.stdout)
    assert "type:" not in migrated.stdout.split("workflow:")[1].replace("kind:", "")
    original = noetl("run", str(legacy), "--json").json()
    again = noetl("run", str(target), "--json").json()
    assert again["status"] == original["status"]
    assert again["completed_steps"] == original["completed_steps"]
    assert {k: v["result"] for k, v in again["steps"].items()} == {k: v["result"] for k, v in original["steps"].items()}


def test_events_json_has_the_contract_fields(noetl) -> None:  # type: ignore[no-untyped-def]
    doc = noetl("run", str(GOOD), "--json").json()
    events = noetl("events", doc["execution_id"], "--json").json()
    assert {"event_id", "execution_id", "event_type", "node_name", "status", "result", "error", "meta",
            "created_at"} <= set(events[0])
    types = [e["event_type"] for e in events]
    assert types[:2] == ["playbook.initialized", "workflow.initialized"]
    assert types[-2:] == ["workflow.completed", "playbook.completed"]
    assert [e["event_id"] for e in events] == list(range(1, len(events) + 1))
    for step in ("start", "failed_exam"):
        assert [e["event_type"] for e in events if e["node_name"] == step] == ["step.enter", "call.done", "step.exit"]


def test_print_output_is_captured_in_the_event(noetl) -> None:  # type: ignore[no-untyped-def]
    result = noetl("run", str(FIXTURES / "print_capture.yaml"), "--json")
    assert "visible in the event log" not in result.stdout
    events = noetl("events", result.json()["execution_id"], "--json").json()
    done = next(e for e in events if e["event_type"] == "call.done")
    assert "visible in the event log" in "".join(done["meta"]["logs"])


def test_cancel_a_running_execution(noetl_home: Path, tmp_path: Path) -> None:
    # The first iteration waits for the release file, so the execution is still running when the
    # test finds it, however long the machine takes to start `noetl run`; the test releases it only
    # after the cancel, and the other 49 iterations (0.2 s each) would outlast the cancel's notice.
    slow = tmp_path / "slow.yaml"
    release = tmp_path / "release"
    slow.write_text(gated_loop_playbook("slow", 50, 0.2))
    env = {"NOETL_HOME": str(noetl_home)}
    import os

    proc = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "run", str(slow), "--set", f"release={release}",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
    try:
        execution_id = until("the execution to start", lambda: _running_execution(noetl_home))
        cancelled = run_noetl("cancel", execution_id, home=noetl_home)
        assert cancelled.code == 0, cancelled.stderr
    finally:
        release.touch()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    doc = json.loads(out)
    assert doc["status"] == "cancelled"
    status = run_noetl("status", execution_id, "--json", home=noetl_home).json()
    assert status["status"] == "cancelled"
    done = [e for e in run_noetl("events", execution_id, "--json", home=noetl_home).json()
            if e["event_type"] == "call.done"]
    assert len(done) < 50


def _chain_playbook(steps: int, pause: float) -> str:
    lines = ["apiVersion: noetl.io/v2", "kind: Playbook", "metadata: {name: chain}", "workflow:"]
    for n in range(steps):
        lines.append(f"  - step: s{n}")
        lines.append(f'    tool: {{kind: python, code: "import time; time.sleep({pause}); result = {n}"}}')
        if n + 1 < steps:
            lines.append(f"    next: {{arcs: [{{step: s{n + 1}}}]}}")
    return "\n".join(lines) + "\n"


def test_nothing_is_recorded_after_a_cancel_from_another_process(noetl_home: Path, tmp_path: Path) -> None:
    """SPEC section 10: replaying the log gives the live document. The run stores a decision every
    few milliseconds and looks for a cancel only every quarter second, so decisions come after the
    other process's `execution.cancelled`; the store refuses them, and the run ends as cancelled
    with exactly the steps its log shows."""
    import os

    chain = tmp_path / "chain.yaml"
    chain.write_text(_chain_playbook(1000, 0.01))  # 10 s of steps: the cancel comes long before the end
    proc = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "run", str(chain), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NOETL_HOME": str(noetl_home)})
    try:
        execution_id = until("the execution to start", lambda: _running_execution(noetl_home))
        cancelled = run_noetl("cancel", execution_id, home=noetl_home)
    finally:
        out, err = proc.communicate(timeout=60)
    assert cancelled.code == 0, cancelled.stderr
    assert proc.returncode == 1, err
    live = json.loads(out)
    assert live["status"] == "cancelled"
    events = run_noetl("events", execution_id, "--json", home=noetl_home).json()
    types = [e["event_type"] for e in events]
    assert types.count("execution.cancelled") == 1 and types[-1] == "execution.cancelled", types[-6:]
    replayed = run_noetl("status", execution_id, "--json", home=noetl_home).json()
    assert replayed == live
    assert len(live["completed_steps"]) < 1000


def _running_execution(home: Path) -> str | None:
    import sqlite3

    db = home / "noetl.db"
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT execution_id FROM execution WHERE status = 'running'").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def test_python_api_run_and_validate(tmp_path: Path) -> None:
    import noetl

    doc = noetl.run(str(GOOD), payload={"score": 80})
    assert doc["status"] == "completed" and doc["result"] == {"grade": "pass"}
    assert noetl.run(GOOD.read_text())["result"] == {"grade": "fail"}
    problems = noetl.validate(GOOD.read_text().replace("kind: noop", "kind: nop"))
    assert any(p.severity == "error" and "unknown tool kind 'nop'" in p.message for p in problems)


def test_query_the_local_store_as_the_guides_do(noetl) -> None:  # type: ignore[no-untyped-def]
    doc = noetl("run", str(GOOD), "--json").json()
    sql = (f"SELECT COUNT(*) AS n FROM noetl.event WHERE execution_id = {doc['execution_id']} "
           "AND event_type = 'step.enter' AND node_name = 'failed_exam'")
    assert noetl("query", sql, "--format", "json").json() == [{"n": 1}]
    quoted = noetl("query", f"SELECT status FROM noetl.execution WHERE execution_id = '{doc['execution_id']}'",
                   "--format", "json")
    assert quoted.json() == [{"status": "completed"}]
    assert "read-only" in assert_one_line_error(noetl("query", "DELETE FROM event"))
    assert noetl("status", doc["execution_id"], "--json").json() == doc  # nothing was changed


ENDLESS = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT x FROM r"


def test_a_local_query_is_bounded_in_rows_and_time(noetl, noetl_home: Path) -> None:  # type: ignore[no-untyped-def]
    """A recursive CTE that never ends held `noetl query` for ever (SQLite does not look at Ctrl-C)
    and one that makes rows filled its memory."""
    from noetl.cli.local_query import query_local
    from noetl.limits import MAX_QUERY_ROWS

    noetl("run", str(GOOD), "--json")
    many = noetl("query", ENDLESS, "--format", "json")
    assert many.code == 0 and len(many.json()) == MAX_QUERY_ROWS
    assert "only the first 10,000 row(s)" in many.stderr
    with pytest.raises(InputError, match=r"^query stopped after 1 s \(the limit of a statement\)$"):
        query_local(noetl_home / "noetl.db", ENDLESS.replace("SELECT x FROM r", "SELECT count(*) FROM r"),
                    timeout_seconds=1)


def test_a_bare_catalog_path_runs_the_registered_playbook(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The guides run registered playbooks as `noetlctl exec batch_execution/multi_playbook_batch`.
    (tmp_path / "p.yaml").write_text(PARAMS.replace("metadata: {name: params}",
                                                    "metadata: {name: params, path: guides/params}"))
    assert noetl("catalog", "register", str(tmp_path / "p.yaml")).code == 0
    for command in ("exec", "run"):
        result = noetl(command, "guides/params", "--json", "--set", "n=7")
        assert result.code == 0, result.stderr
        assert result.json()["result"]["n"] == 7
    for command in ("exec", "run"):
        missing = noetl(command, "guides/not_registered")
        assert missing.code == 2
        assert "guides/not_registered: file not found, and no catalog entry has that path" \
            in assert_one_line_error(missing)


def test_seed_spellings_take_the_server_port_after_the_command(noetl) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for args in (["playbooks", "--register", str(GOOD), "--port", str(port)],
                 ["playbooks", "--execute", "--path", "x/y", "--port", str(port)],
                 ["execute", "status", "1", "--json", "--host", "127.0.0.1", "--port", str(port)],
                 ["catalog", "list", "--port", str(port)]):
        line = assert_one_line_error(noetl(*args))
        assert f":{port}" in line and "cannot reach the NoETL server" in line, (args, line)


def test_a_password_in_the_server_url_never_reaches_an_error(noetl) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://operator:s3cret-in-url@127.0.0.1:{port}"
    for args in (["--server-url", url, "status", "1"], ["--server-url", url, "query", "SELECT 1"]):
        line = assert_one_line_error(noetl(*args))
        assert "cannot reach the NoETL server" in line and f"operator:***@127.0.0.1:{port}" in line, line
        assert "s3cret-in-url" not in line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["executions", "--limit", "0"], "'--limit': 0 is not in the range"),
        (["run", "--bogus", "x"], "No such option '--bogus'"),
        (["run"], "Missing argument 'REF'"),
        (["schedule", "add", "x"], "Missing option '--cron'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["stauts", "1"], "No such command 'stauts'. Did you mean 'status'?"),
        (["watch", "1"], "No such command 'watch'. Did you mean: noetl status ID --watch, or noetl logs ID --follow?"),
        (["schedule", "lst"], "No such command 'lst'. Did you mean 'list'?"),
        (["ui", "--port", "99999"], "'--port'"),
        (["worker", "start", "--log-level", "bogus"], "'--log-level': 'bogus' is not one of"),
        (["server", "start", "--log-level", "bogus"], "'--log-level': 'bogus' is not one of"),
        (["worker", "start", "--concurrency", "0"], "'--concurrency': 0 is not in the range x>=1"),
        (["worker", "start", "--poll-interval", "0"], "'--poll-interval': 0.0 is not in the range x>0"),
        (["scheduler", "--interval", "-1"], "'--interval': -1.0 is not in the range x>0"),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_help(noetl, args: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    line = assert_one_line_error(noetl(*args))
    assert line.startswith("error: ") and fragment in line and "--help)" in line, line


def test_noetl_without_a_command_shows_the_help(noetl) -> None:  # type: ignore[no-untyped-def]
    result = noetl()
    assert result.code == 2 and "Commands:" in result.stdout + result.stderr
    assert noetl("--help").code == 0 and noetl("--version").code == 0


def test_ui_on_a_port_in_use_is_one_line(noetl) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = assert_one_line_error(noetl("ui", "--port", str(port)))
    assert line == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_exec_of_a_file_on_the_server_says_to_register_it(noetl) -> None:  # type: ignore[no-untyped-def]
    # said before any request: the server's address here answers nothing
    line = assert_one_line_error(noetl("--server-url", "http://127.0.0.1:9", "exec", str(GOOD), "-r", "distributed"))
    assert line == (f"error: {GOOD}: the server runs catalog entries, not files: register it first "
                    f"(noetl catalog register {GOOD}), then run catalog://<its metadata.path>")


def test_empty_listings_say_so_on_stderr_and_leave_stdout_empty(noetl) -> None:  # type: ignore[no-untyped-def]
    for command, message in ((("hook", "list"), "no hooks"), (("trigger", "list"), "no triggers"),
                             (("schedule", "list"), "no schedules"), (("catalog", "list"), "no catalog entries"),
                             (("credential", "list"), "no credentials")):
        result = noetl(*command)
        assert (result.code, result.stdout, result.stderr.strip()) == (0, "", message), command
        assert noetl(*command, "--json").json() == []
