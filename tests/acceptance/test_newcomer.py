"""Commands the README and the guides give, run from the repository root as a new user would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from acceptance.conftest import run_noetl

REPO = Path(__file__).parent.parent.parent


def in_repo(*args: str, home: Path) -> tuple[int, str, str]:
    import os
    import subprocess
    import sys

    env = {**os.environ, "NOETL_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "noetl.cli.main", *args], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def start_worker(env: dict[str, str], log_file: Path) -> Any:
    """`noetl worker start --name w`, its output in ``log_file``."""
    import subprocess
    import sys

    with log_file.open("w") as log:
        return subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "worker", "start", "--name", "w"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_for_line(worker: Any, log_file: Path, text: str, deadline: float) -> None:
    """Until the worker's output holds ``text``; it must not exit meanwhile."""
    import time

    while text not in log_file.read_text():
        assert worker.poll() is None and time.monotonic() < deadline, log_file.read_text()
        time.sleep(0.05)


def test_a_catalog_path_wins_over_a_directory_of_the_same_name(tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text('{"people": ["Ann"]}')
    code, _, err = in_repo("execute", "playbook", "examples/hello", "--input", str(payload), home=tmp_path)
    assert code == 2
    assert err.strip() == ("error: examples/hello: is a directory, and no catalog entry has that path: "
                           "run a file (examples/hello/hello.yaml) or register it first")
    assert in_repo("catalog", "register", "examples/hello/hello.yaml", home=tmp_path)[0] == 0
    code, out, _ = in_repo("execute", "playbook", "examples/hello", "--input", str(payload), home=tmp_path)
    assert code == 0 and "completed" in out and "\"size\": \"few\"" in out  # one person: few


def test_an_unreadable_input_file_is_named_by_the_option_the_user_gave(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    code, _, err = in_repo("execute", "playbook", "examples/hello/hello.yaml", "--input", str(missing), home=tmp_path)
    assert code == 2
    assert err.strip() == f"error: --input: cannot read file {missing}: No such file or directory"


def test_catalog_list_credential_lists_credentials(tmp_path: Path) -> None:
    assert in_repo("register", "credential", "-f", "examples/credentials/pg_local.yaml", home=tmp_path)[0] == 0
    code, out, _ = in_repo("catalog", "list", "Credential", home=tmp_path)
    assert code == 0 and out.split() == ["pg_local", "postgres"]


def test_run_with_a_server_option_says_it_runs_locally(tmp_path: Path) -> None:
    result = run_noetl("--port", "8082", "run", str(REPO / "examples/hello/hello.yaml"), home=tmp_path)
    assert result.code == 0
    assert "note: `noetl run` runs in this process on the local store; to run on the server at " \
           "http://localhost:8082: noetl exec catalog://PATH" in result.stderr


def test_catalog_list_is_a_table_aligned_in_columns(tmp_path: Path) -> None:
    for playbook in ("examples/hello/hello.yaml", "examples/pagination/pagination_canonical.yaml"):
        assert in_repo("catalog", "register", playbook, home=tmp_path)[0] == 0
    code, out, _ = in_repo("catalog", "list", home=tmp_path)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    # the version column starts at the same place on every line, however long the path before it
    assert len({line.index(" v1 ") for line in lines}) == 1, out


def test_a_schedule_of_a_catalog_path_named_like_a_directory_runs_the_catalog_entry(tmp_path: Path) -> None:
    # from the repository root, examples/hello is both a directory and the catalog path of hello.yaml
    assert in_repo("catalog", "register", "examples/hello/hello.yaml", home=tmp_path)[0] == 0
    code, out, err = in_repo("schedule", "add", "examples/hello", "--cron", "0 6 * * *", "--json", home=tmp_path)
    assert code == 0, err
    assert '"path": "examples/hello"' in out
    code, out, err = in_repo("schedule", "backfill", "examples/hello", "--from", "2026-03-30T00:00:00Z",
                             "--to", "2026-03-30T23:00:00Z", home=tmp_path)
    assert code == 0, err
    assert out.split()[-1] == "completed"


def test_credential_register_is_the_credential_group_s_way_to_register(tmp_path: Path) -> None:
    # `noetl credential list|delete` are there, so `noetl credential register` is what users try
    code, out, err = in_repo("credential", "register", "-f", "examples/credentials/pg_local.yaml", home=tmp_path)
    assert code == 0, err
    assert [(doc["kind"], [c["name"] for c in doc["registered"]]) for doc in json.loads(out)] == \
        [("Credential", ["pg_local"])]
    assert in_repo("credential", "list", home=tmp_path)[1].split() == ["pg_local", "postgres"]
    code, _, err = in_repo("credential", "register", home=tmp_path)
    assert (code, err.strip()) == (2, "error: credential register needs a file: noetl credential register -f FILE")


def test_registering_a_playbook_as_a_credential_says_so_and_stores_nothing(tmp_path: Path) -> None:
    for command in (("register", "credential", "-f"), ("credential", "register", "-f")):
        code, _, err = in_repo(*command, "examples/hello/hello.yaml", home=tmp_path)
        assert (code, err.strip()) == (2, "error: examples/hello/hello.yaml: this is a playbook, not a credential; "
                                          "register it with: noetl catalog register examples/hello/hello.yaml")
    assert in_repo("catalog", "list", home=tmp_path)[1].strip() == ""


def test_a_credential_file_missing_its_data_is_told_as_a_credential(tmp_path: Path) -> None:
    # not as a playbook missing its `workflow`: the user said it is a credential
    bad = tmp_path / "cred.yaml"
    bad.write_text("name: pg_x\ntype: postgres\n")
    code, _, err = in_repo("register", "credential", "-f", str(bad), home=tmp_path)
    assert (code, err.strip()) == (2, f"error: {bad}: credential 'pg_x' needs a non-empty `data` mapping")


def test_db_init_on_a_database_that_refuses_says_why_in_one_line(tmp_path: Path) -> None:
    """The connection pool retried for its whole timeout, printed a warning per attempt and ended
    with 'pool initialization incomplete after 10.0 sec': the reason was only in the warnings."""
    code, out, err = in_repo("db", "init", "--database-url", "postgresql://noetl:hunter2@127.0.0.1:1/noetl",
                             home=tmp_path)
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        'error: cannot connect to PostgreSQL at postgresql://noetl:***@127.0.0.1:1/noetl: '
        'connection to server at "127.0.0.1", port 1 failed: Connection refused']


def test_a_worker_stopped_before_postgresql_answers_never_says_it_started(tmp_path: Path) -> None:
    """It logged 'worker w started (concurrency 8)' as SIGTERM came, then its listener's failure."""
    import os
    import signal
    import time

    log_file = tmp_path / "worker.log"
    env = {**os.environ, "NOETL_HOME": str(tmp_path / "home"),
           "NOETL_DATABASE_URL": "postgresql://noetl:hunter2@127.0.0.1:1/noetl"}
    worker = start_worker(env, log_file)
    try:
        wait_for_line(worker, log_file, "cannot connect to PostgreSQL", time.monotonic() + 60)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        worker.kill()
    lines = log_file.read_text().splitlines()
    assert not [line for line in lines if " started" in line or "listener" in line], lines
    assert lines[-1].endswith("worker w stopped before PostgreSQL answered")
    assert "hunter2" not in log_file.read_text()


def test_a_worker_refused_by_postgresql_for_good_stops_with_one_line(
        tmp_path: Path, pg_cluster: dict[str, Any]) -> None:
    """A wrong password is answered the same way however long the worker waits: it retried for
    ever, one warning per attempt. Unreachable PostgreSQL is still waited for (the test above)."""
    import os
    import subprocess
    import sys

    url = f"postgresql://{pg_cluster['user']}:not-the-password@{pg_cluster['host']}:{pg_cluster['port']}/" \
          f"{pg_cluster['database']}"
    env = {**os.environ, "NOETL_HOME": str(tmp_path / "home"), "NOETL_DATABASE_URL": url}
    done = subprocess.run([sys.executable, "-m", "noetl.cli.main", "worker", "start", "--name", "w"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "password authentication failed" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "not-the-password" not in done.stderr + done.stdout


@pytest.mark.slow
def test_a_worker_waits_for_a_standby_to_be_promoted(tmp_path: Path) -> None:
    """A standby answers 'FATAL: the database system is not accepting connections' until it is
    promoted (a failover): the worker took that for a refusal for good and exited 1."""
    import os
    import signal
    import time

    from support.pgcluster import _run, _server_account, postgres_cluster

    with postgres_cluster() as pg:
        env = {**os.environ, "NOETL_HOME": str(tmp_path / "home"), "NOETL_DATABASE_URL": pg["url"]}
        assert run_noetl("db", "init", env=env).code == 0
        data, account = Path(pg["base"]) / "data", _server_account()
        pg_ctl = [f"{pg['bindir']}/pg_ctl", "-D", str(data), "-w", "-t", "60"]
        _run([*pg_ctl, "-m", "fast", "stop"], account)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\nhot_standby = off\n")
        (data / "standby.signal").touch()
        if account is not None:
            os.chown(data / "standby.signal", account.pw_uid, account.pw_gid)
        _run([*pg_ctl, "-l", f"{pg['base']}/server.log", "start"], account)
        log_file = tmp_path / "worker.log"
        worker = start_worker(env, log_file)
        try:
            deadline = time.monotonic() + 60
            wait_for_line(worker, log_file, "not accepting connections", deadline)
            _run([*pg_ctl, "promote"], account)
            wait_for_line(worker, log_file, "worker w started", deadline)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0, log_file.read_text()
        finally:
            worker.kill()
    assert "error:" not in log_file.read_text()
