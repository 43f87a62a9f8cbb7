"""A secret stored nowhere: run a playbook that takes two secret values everywhere a playbook can
(tests/fixtures/security/leak_parent.yaml) and grep every column of every table of the store, every
file NoETL wrote and every process's log for them, on the local runtime (SQLite) and on a server with
a worker that works through its API (PostgreSQL). The steps must still get the values themselves:
the playbook's `verify` step returns their digests, which the test compares."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from support.httpserver import LocalHTTPServer
from support.security import FIXTURES
from support.waiting import until
from test_distributed_cluster import REPO, Cluster, create_database

# Long and random, so that a hit can be nothing but a leak; one the runtime resolves where the
# execution starts (keychain, `secret.NAME`), one that only the worker running the steps can resolve.
CANARY = "canary-" + secrets.token_hex(12)
WORKER_CANARY = "worker-canary-" + secrets.token_hex(12)
SECRETS = [CANARY, WORKER_CANARY]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


EXPECTED_DIGESTS = {
    "task_token": _digest(WORKER_CANARY), "first_child_digest": _digest(WORKER_CANARY),
    "first_child_nested_digest": _digest(WORKER_CANARY), "token": _digest(CANARY), "loop_item": _digest(CANARY),
    "arc_input": _digest(CANARY), "child_digest": _digest(CANARY), "echoed_header": _digest(CANARY),
    # A result stored by reference is stored redacted, with the result as returned sealed beside it.
    "big_result": _digest(CANARY), "shell": _digest(CANARY),
}


def sqlite_leaks(path: Path, values: list[str]) -> list[str]:
    """``table.column`` of every SQLite column (any type) that holds one of ``values``."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    found = []
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]:
                for value in values:
                    hits = conn.execute(f'SELECT count(*) FROM "{table}" '
                                        f'WHERE instr(CAST("{column}" AS BLOB), CAST(? AS BLOB)) > 0', (value,))
                    if hits.fetchone()[0]:
                        found.append(f"{table}.{column}")
    finally:
        conn.close()
    return found


def postgres_leaks(database_url: str, values: list[str]) -> list[str]:
    """``schema.table.column`` of every column of every table (NoETL's and any other) holding one of ``values``."""
    found = []
    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            "SELECT c.table_schema, c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert any(table == "execution" for _, table, _, _ in columns), "no NoETL table seen"
        for schema, table, column, data_type in columns:
            where = (sql.SQL("position(convert_to(%s, 'UTF8') in {}) > 0") if data_type == "bytea"
                     else sql.SQL("strpos({}::text, %s) > 0")).format(sql.Identifier(column))
            query = sql.SQL("SELECT count(*) FROM {}.{} WHERE ").format(
                sql.Identifier(schema), sql.Identifier(table)) + where
            for value in values:
                row = conn.execute(query, (value,)).fetchone()
                if row and row[0]:
                    found.append(f"{schema}.{table}.{column}")
    return found


def file_leaks(root: Path, values: list[str]) -> list[str]:
    """Files under ``root`` (the store's file, results on disk, logs) that hold one of ``values``."""
    encoded = [value.encode() for value in values]
    return [str(path.relative_to(root)) for path in sorted(root.rglob("*"))
            if path.is_file() and any(value in path.read_bytes() for value in encoded)]


def assert_the_steps_got_the_secrets(doc: dict[str, Any]) -> None:
    assert doc["status"] == "failed", json.dumps(doc)[:3000]
    assert doc["steps"]["verify"]["result"]["digests"] == EXPECTED_DIGESTS
    assert doc["steps"]["verify"]["result"]["token"] == "***"
    assert f"the partner refused token *** ({_digest(CANARY)}, {_digest(WORKER_CANARY)})" in json.dumps(doc["error"])


# What a trigger, a webhook delivery and a schedule start: it returns the payload it was given.
LEAK_AFTER = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: leak_after, path: tests/leak/after}
workflow:
  - step: start
    tool: {kind: python, input: {given: "{{ workload }}"}, code: "result = {'given': given}"}
"""

def test_no_secret_is_stored_by_the_local_runtime(tmp_path: Path, http_server: LocalHTTPServer) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    shutil.copy(FIXTURES / "leak_parent.yaml", work / "parent.yaml")
    shutil.copy(FIXTURES / "leak_child.yaml", work / "child.yaml")  # found beside its parent
    env = {**os.environ, "NOETL_HOME": str(home), "LEAK_CANARY": CANARY, "LEAK_WORKER_CANARY": WORKER_CANARY,
           "PYTHONPATH": str(REPO)}
    outputs: list[str] = []
    (work / "after.yaml").write_text(LEAK_AFTER)
    _noetl(env, outputs, "catalog", "register", str(work / "after.yaml"))
    _noetl(env, outputs, "trigger", "add", "--on-path", "tests/leak/parent", "--on", "failed",
           "--run", "tests/leak/after")
    run = _noetl(env, outputs, "run", str(work / "parent.yaml"), "--json", "--payload",
                 json.dumps({"api": http_server.url}), code=1)
    parent = json.loads(run.stdout)
    assert_the_steps_got_the_secrets(parent)
    executions = json.loads(_noetl(env, outputs, "executions", "--json").stdout)
    assert [e["status"] for e in executions if e["path"] == "tests/leak/after"] == ["completed"], executions
    # A rerun of a child starts with the payload it was given, which its row stores redacted.
    children = [e["execution_id"] for e in executions if e.get("parent_execution_id") == parent["execution_id"]]
    reruns = [json.loads(_noetl(env, outputs, "rerun", child, "--json").stdout) for child in children]
    assert sorted(doc["result"]["digest"] for doc in reruns) == sorted(map(_digest, SECRETS))
    # Resumed, the failed step runs again on state rebuilt from the log (ctx, task results).
    resumed = _noetl(env, outputs, "resume", parent["execution_id"], "--json", code=1)
    assert_the_steps_got_the_secrets(json.loads(resumed.stdout))
    leaks = sqlite_leaks(home / "noetl.db", SECRETS)
    assert not leaks, leaks
    leaked_files = file_leaks(home, SECRETS)
    assert not leaked_files, leaked_files
    assert not any(value in output for output in outputs for value in SECRETS)


def _noetl(env: dict[str, str], outputs: list[str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """`noetl ARGS` in the playbooks' directory; what it printed joins ``outputs``."""
    done = subprocess.run([sys.executable, "-m", "noetl.cli.main", *args], capture_output=True, text=True, env=env,
                          cwd=Path(env["NOETL_HOME"]).parent / "work", timeout=120)
    assert done.returncode == code, done.stderr
    outputs += [done.stdout, done.stderr]
    return done


@pytest.fixture(params=["database worker", "worker through the API"])
def deployment(request: pytest.FixtureRequest, pg_cluster: dict[str, Any],
               tmp_path: Path) -> Iterator[Cluster]:
    """A server and one worker; only the worker can resolve WORKER_CANARY."""
    cluster = Cluster(create_database(pg_cluster), tmp_path / "deployment",
                      env={"NOETL_API_TOKEN": "leak-test-token", "LEAK_CANARY": CANARY})
    try:
        cluster.start_server()
        if request.param == "database worker":
            cluster.start_worker("w1", concurrency=4, env={"LEAK_WORKER_CANARY": WORKER_CANARY})
        else:
            cluster.start_remote_worker("r1", concurrency=4, env={"LEAK_WORKER_CANARY": WORKER_CANARY})
        yield cluster
    finally:
        cluster.close()


HOOK_SECRET = "hook-secret-" + secrets.token_hex(12)
HOOK_TOKEN = "hook-token-" + secrets.token_hex(12)


def _add_trigger_hooks_and_schedule(cluster: Cluster) -> None:
    """A trigger on the leaking playbook's failure, a signed and a token webhook, and a schedule,
    each starting LEAK_AFTER: their rows, the payloads they start with and the console's pages of
    them are grepped with everything else (the hooks' own secret and token as well)."""
    cluster.register(LEAK_AFTER)
    calls = [("/api/triggers", {"on_path": "tests/leak/parent", "on": "failed", "run": "tests/leak/after"}),
             ("/api/hooks", {"name": "signed", "path": "tests/leak/after", "secret": HOOK_SECRET}),
             ("/api/hooks", {"name": "tokened", "path": "tests/leak/after", "token": HOOK_TOKEN}),
             ("/api/schedules", {"name": "yearly", "path": "tests/leak/after", "cron": "0 0 1 1 *",
                                 "payload": {"note": "scheduled"}})]
    for route, body in calls:
        response = cluster.client.post(route, json=body)
        assert response.status_code == 200, response.text


def _deliver_to_the_hooks(cluster: Cluster) -> list[str]:
    """One signed delivery and one with the hook's token, and a backfilled fire of the schedule."""
    from noetl.hooks import signature

    body, stamp = json.dumps({"note": "delivered"}).encode(), str(int(time.time()))
    signed = cluster.client.post("/api/hooks/signed", content=body, headers={
        "X-NoETL-Timestamp": stamp, "X-NoETL-Delivery": "delivery-1",
        "X-NoETL-Signature": signature(HOOK_SECRET, stamp, body)})
    tokened = cluster.client.post("/api/hooks/tokened", content=body, headers={"X-NoETL-Token": HOOK_TOKEN})
    fired = cluster.client.post("/api/schedules/yearly/backfill",
                                json={"from": "2025-12-31T00:00:00Z", "to": "2026-01-02T00:00:00Z"})
    for response in (signed, tokened, fired):
        assert response.status_code == 200, response.text
    return [signed.json()["execution_id"], tokened.json()["execution_id"], fired.json()[0]["execution_id"]]


def _console_pages(cluster: Cluster, execution_ids: list[str]) -> str:
    """The text of the console's pages: the lists and the page of every execution named."""
    cookies = {"noetl_token": cluster.env["NOETL_API_TOKEN"]}
    texts = []
    for page in ["/", "/catalog", "/schedules", "/credentials", *(f"/executions/{i}" for i in execution_ids)]:
        response = httpx.get(cluster.url + page, cookies=cookies, timeout=30)
        assert response.status_code == 200, (page, response.text[:500])
        texts.append(response.text)
    return "\n".join(texts)


def sealed_result_keys(database_url: str, secret_key: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of big results sealed beside their redacted copy (``_ref.sealed.key``), read from
    the only place they are stored: the events' own sealed copies, opened with the credential key."""
    from noetl.credential_keys import decrypt, forget_cached_keys

    monkeypatch.setenv("NOETL_SECRET_KEY", secret_key)
    forget_cached_keys()
    with psycopg.connect(database_url) as conn:
        sealed = [row[0] for row in conn.execute(
            "SELECT meta->>'sealed_result' FROM noetl.event WHERE meta ? 'sealed_result'")]
    opened = json.dumps([decrypt(blob.encode(), "test").data for blob in sealed])
    forget_cached_keys()
    return sorted(set(re.findall(r'"sealed": \{"uri": "[^"]+", "key": "([A-Za-z0-9_=-]{44})"', opened)))


def test_no_secret_is_stored_by_the_distributed_runtime(deployment: Cluster, http_server: LocalHTTPServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = deployment
    cluster.register((FIXTURES / "leak_child.yaml").read_text())
    cluster.register((FIXTURES / "leak_parent.yaml").read_text())
    _add_trigger_hooks_and_schedule(cluster)
    execution_id = cluster.execute("tests/leak/parent", {"api": http_server.url})
    doc = cluster.wait(execution_id, timeout=120)
    assert_the_steps_got_the_secrets(doc)
    started = _deliver_to_the_hooks(cluster)
    fired = until("the trigger to start its execution", lambda: cluster.sql(
        "SELECT execution_id FROM noetl.execution WHERE path = 'tests/leak/after' AND payload::text LIKE %s",
        f"%{execution_id}%"))
    started.append(str(fired[0][0]))
    after = [cluster.wait(started_id) for started_id in started]
    assert [run["status"] for run in after] == ["completed"] * 4, after
    assert [run["result"]["given"].get("note") for run in after[:3]] == ["delivered", "delivered", "scheduled"]
    assert after[3]["result"]["given"]["trigger"]["execution_id"] == execution_id
    children = cluster.client.get("/api/executions", params={"parent_execution_id": execution_id}).json()
    listed = json.dumps(children) + json.dumps(cluster.client.get(f"/api/executions/{execution_id}").json())
    # A rerun of a child starts with the payload it was given, which its row stores redacted.
    reruns = [cluster.wait(cluster.client.post(f"/api/executions/{child['execution_id']}/rerun", json={})
                           .json()["execution_id"]) for child in children]
    assert sorted(doc["result"]["digest"] for doc in reruns) == sorted(map(_digest, SECRETS)), reruns
    # Resumed, the failed step runs again on state rebuilt from the log (ctx, task results).
    resumed = cluster.client.post(f"/api/executions/{execution_id}/resume")
    assert resumed.status_code == 200, resumed.text
    until("the resumed execution to fail again", lambda: cluster.sql(
        "SELECT event_type FROM noetl.event WHERE execution_id = %s ORDER BY event_id DESC LIMIT 1",
        int(execution_id)) == [("playbook.failed",)] and cluster.status(execution_id)["status"] == "failed")
    assert_the_steps_got_the_secrets(cluster.status(execution_id))
    # The big result's key opens its sealed copy: stored only inside the events' sealed copies.
    result_keys = sealed_result_keys(cluster.database_url, cluster.env["NOETL_SECRET_KEY"], monkeypatch)
    assert result_keys, "no big result sealed"
    everything = [*SECRETS, HOOK_SECRET, HOOK_TOKEN, *result_keys]
    leaks = postgres_leaks(cluster.database_url, everything)
    assert not leaks, leaks
    children_ids = [child["execution_id"] for child in children]
    listed += _console_pages(cluster, [execution_id, *children_ids, *started])
    assert not any(value in listed for value in everything)
    leaked_files = file_leaks(cluster.home, everything)  # results on disk, the server's and worker's logs
    assert not leaked_files, leaked_files


def test_a_worker_through_the_api_learns_the_executions_secrets_but_not_the_servers(
        pg_cluster: dict[str, Any], tmp_path: Path) -> None:
    """A leased command carries the values its execution's log redacts, so that the worker redacts the
    results it stores by reference with them; never the server's own database password, key or
    tokens (such a worker holds no database credentials)."""
    token = "server-token-" + secrets.token_hex(8)
    cluster = Cluster(create_database(pg_cluster), tmp_path / "deployment",
                      env={"NOETL_API_TOKEN": token, "LEAK_CANARY": CANARY})
    try:
        cluster.start_server()
        cluster.register((FIXTURES / "leak_parent.yaml").read_text())
        cluster.execute("tests/leak/parent", {"api": "http://127.0.0.1:1"})
        # The first command is queued with the execution, and no worker runs here to take it.
        leased = cluster.client.post("/api/workers/lease", json={"worker": "probe", "limit": 1}).json()["commands"]
        assert len(leased) == 1, leased
        shipped = leased[0]["secrets"]
        assert CANARY in shipped
        own = (token, cluster.env["NOETL_SECRET_KEY"], pg_cluster["password"])  # alone or in the database URL
        assert not [value for value in shipped if any(setting in value for setting in own)], shipped
    finally:
        cluster.close()


PROC_ENVIRON = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: proc_environ, path: tests/leak/proc_environ}
workflow:
  - step: start
    tool:
      kind: shell
      command: "cat /proc/$PPID/environ | tr '\\\\0' '\\\\n' | grep OPERATOR_ | rev"
    next: [{step: python}]
  - step: python
    tool:
      kind: python
      isolation: process
      code: |
        import os
        seen, errors = [], []
        pid = os.getppid()
        while pid > 1:  # every ancestor: the runtime and whatever started it
            try:
                seen += [line[::-1] for line in open(f"/proc/{pid}/environ", "rb").read().decode().split("\\0")
                         if line.startswith("OPERATOR_")]
            except OSError as exc:
                errors.append(exc.strerror)
            pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        result = {"seen": seen, "errors": errors}
    next: [{step: files}]
  - step: files
    tool:
      kind: shell
      command: 'for fd in /proc/$$/fd/*; do readlink "$fd" || true; done'
    next: [{step: python_files}]
  - step: python_files
    tool:
      kind: python
      isolation: process
      code: |
        import os
        result = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                  if os.path.exists(f"/proc/self/fd/{fd}")]
"""


def test_tools_cannot_read_the_runtimes_environment_in_proc(tmp_path: Path) -> None:
    """Any process of the same user may read /proc/<pid>/environ of another: a shell step's
    `cat /proc/$PPID/environ` read NoETL's whole environment, the operator's secrets with it (which
    no redactor knows), and so did python code in a process of its own."""
    secret = "operator-" + secrets.token_hex(8)
    (tmp_path / "proc.yaml").write_text(PROC_ENVIRON)
    command = [sys.executable, "-m", "noetl.cli.main", "run", str(tmp_path / "proc.yaml"), "--json"]
    if os.geteuid() == 0:  # root reads any process's /proc: run as the root user without its capabilities
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop the capabilities")
        command = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *command]
    env = {**os.environ, "NOETL_HOME": str(tmp_path / "home"), "OPERATOR_CLOUD_KEY": secret, "PYTHONPATH": str(REPO)}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    steps = json.loads(run.stdout)["steps"]
    assert "Permission denied" in steps["start"]["result"]["stderr"]
    assert steps["start"]["result"]["stdout"] == ""
    assert steps["python"]["result"]["seen"] == [] and "Permission denied" in steps["python"]["result"]["errors"]
    # Nor through the files NoETL holds open: a tool inherits none of them (the store, its
    # connections); a process of the python pool holds only its own channel to the runtime.
    shell_files = steps["files"]["result"]["stdout"].split()
    assert not [name for name in shell_files if "socket:" in name or str(tmp_path) in name], shell_files
    python_files = steps["python_files"]["result"]
    assert not [name for name in python_files if str(tmp_path) in name], python_files
    assert len([name for name in python_files if name.startswith("socket:")]) <= 1, python_files
