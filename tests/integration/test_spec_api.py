"""SPEC sections 7, 8, 10, 12 and 13 against a real deployment: every REST route with its request and
response shape, the API token, bad input as 4xx JSON, secrets redacted on the distributed runtime, child
playbooks, and the CLI's server-facing commands (with their exit codes and one-line errors).

One server and two workers (NOETL_API_TOKEN set) are shared by the whole module."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.waiting import until
from test_distributed_cluster import Cluster, create_database

from noetl.server.app import create_app
from noetl.server.state import ServerConfig

TOKEN = "spec-api-token"
SECRET = "pw-Zq81-never-shown"
ENV_SECRET = "env-Kx42-never-shown"
BEARER = "tok-Rr07-never-shown"

HELLO = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: hello, path: spec/hello}
workload: {name: world, extra: {a: 1}}
workflow:
  - step: start
    tool: {kind: python, input: {n: "{{ workload.name }}", e: "{{ workload.extra }}"},
           code: "result = {'greeting': 'hello ' + n, 'extra': e}"}
    next: [{step: end}]
  - step: end
    tool: {kind: noop}
"""

SLOW = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow, path: spec/slow}
workflow:
  - step: start
    tool: {kind: python, code: "import time; time.sleep(30); result = 1"}
"""

CHILD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: child, path: spec/child}
workload: {x: 0}
workflow:
  - step: start
    tool: {kind: python, input: {x: "{{ workload.x }}"}, code: "result = {'doubled': x * 2}"}
    next: [{step: finalize}]
  - step: finalize
    tool: {kind: python, input: {x: "{{ workload.x }}"}, code: "result = {'final': x + 1}"}
"""

PARENT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: parent, path: spec/parent}
workflow:
  - step: start
    tool: {kind: playbook, path: spec/child, input: {x: 20}, return_step: start}
    next: [{step: whole}]
  - step: whole
    tool: {kind: playbook, path: spec/child, input: {x: 5}}
"""

FAILING_PARENT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: failing_parent, path: spec/failing_parent}
workflow:
  - step: start
    tool: {kind: playbook, path: spec/boom}
"""

BOOM = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: boom, path: spec/boom}
workflow:
  - step: start
    tool: {kind: python, code: "raise ValueError('child broke')"}
"""

SLOW_PARENT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow_parent, path: spec/slow_parent}
workflow:
  - step: start
    tool: {kind: playbook, path: spec/slow}
"""

SECRETS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: secrets, path: spec/secrets}
keychain:
  - {name: db, kind: credential, credential: spec_pg}
workflow:
  - step: start
    tool: {kind: python, input: {pw: "{{ keychain.db.password }}"}, code: "result = {'pw': pw, 'n': len(pw)}"}
    next: [{step: fail}]
  - step: fail
    tool: {kind: python, input: {pw: "{{ keychain.db.password }}"}, code: "raise ValueError('bad ' + pw)"}
"""

GRANDPARENT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: grandparent, path: spec/grandparent}
workflow:
  - step: start
    tool: {kind: playbook, path: spec/parent}
"""

FANOUT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: fanout, path: spec/fanout}
workflow:
  - step: start
    loop: {in: [1, 2, 3, 4, 5], iterator: x, spec: {mode: parallel, max_in_flight: 2}}
    tool: {kind: playbook, path: spec/child, input: {x: "{{ iter.x }}"}, return_step: start}
"""

CREDENTIAL = {"name": "spec_pg", "type": "postgres", "description": "spec test",
              "data": {"host": "localhost", "port": 5432, "user": "u", "password": SECRET, "database": "d"}}


@pytest.fixture(scope="module")
def cluster(pg_cluster: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    deployment = Cluster(create_database(pg_cluster), tmp_path_factory.mktemp("spec-api"),
                         env={"NOETL_API_TOKEN": TOKEN, "SPEC_ENV_SECRET": ENV_SECRET})
    try:
        deployment.start_server()
        deployment.start_worker("w1", concurrency=8)
        deployment.start_worker("w2", concurrency=8)
        for text in (HELLO, SLOW, CHILD, PARENT, FAILING_PARENT, BOOM, SLOW_PARENT, SECRETS, GRANDPARENT, FANOUT):
            deployment.register(text)
        yield deployment
    finally:
        deployment.close()


def noetl(cluster: Cluster, *args: str, env: dict[str, str] | None = None,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`noetl ARGS` as a user runs it (token in the environment, no server unless given)."""
    return subprocess.run([sys.executable, "-m", "noetl.cli.main", *args], capture_output=True, text=True,
                          env={**cluster.env, **(env or {})}, cwd=str(cluster.home), timeout=60, input=stdin)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# section 13: routes and shapes -------------------------------------------------------------------

def test_token_is_required_on_every_api_route_and_health_is_open(cluster: Cluster) -> None:
    routes = [("GET", "/api/health"), ("GET", "/api/v2/health"), ("POST", "/api/catalog/list"),
              ("POST", "/api/catalog/register"), ("POST", "/api/catalog/resource"), ("POST", "/api/execute"),
              ("POST", "/api/run/playbook"), ("POST", "/api/v2/execute"), ("GET", "/api/executions"),
              ("GET", "/api/executions/1"), ("GET", "/api/executions/1/status"),
              ("GET", "/api/executions/1/events"), ("POST", "/api/executions/1/cancel"), ("POST", "/api/events"),
              ("POST", "/api/v2/events"), ("POST", "/api/v2/engine/register-playbook"),
              ("GET", "/api/credentials"), ("POST", "/api/credentials"), ("GET", "/api/credentials/x"),
              ("DELETE", "/api/credentials/x"), ("POST", "/api/postgres/execute")]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for method, path in routes:
            response = httpx.request(method, cluster.url + path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert "error" in response.json()
    assert httpx.get(f"{cluster.url}/health").json()["status"] == "ok"
    health = cluster.client.get("/api/health").json()
    assert health["status"] == "ok" and health["database"]["status"] == "ok"
    assert cluster.client.get("/api/v2/health").json()["status"] == "ok"
    assert httpx.get(f"{cluster.url}/metrics").status_code == 200


def test_openapi_describes_the_routes(cluster: Cluster) -> None:
    assert "swagger" in httpx.get(f"{cluster.url}/docs").text.lower()
    schema = httpx.get(f"{cluster.url}/openapi.json").json()
    for path in ("/api/catalog/register", "/api/catalog/list", "/api/catalog/resource", "/api/execute",
                 "/api/executions", "/api/executions/{execution_id}/status", "/api/executions/{execution_id}/events",
                 "/api/executions/{execution_id}/cancel", "/api/credentials", "/api/credentials/{name}", "/api/events"):
        assert path in schema["paths"], path


def test_catalog_register_plain_and_base64_list_and_resource(cluster: Cluster) -> None:
    text = HELLO.replace("spec/hello", "spec/versions")
    first = cluster.register(text)
    assert set(first) >= {"path", "version", "catalog_id"} and first["path"] == "spec/versions"
    encoded = base64.b64encode(text.replace("world", "v2").encode()).decode()
    second = cluster.register(encoded)
    assert second["path"] == "spec/versions" and second["version"] == first["version"] + 1
    assert second["catalog_id"] != first["catalog_id"]
    seed = cluster.client.post("/api/v2/engine/register-playbook", json={"playbook_yaml": text}).json()
    assert seed["path"] == "spec/versions" and seed["version"] == first["version"] + 2

    entries = cluster.client.post("/api/catalog/list").json()["entries"]
    assert [e["version"] for e in entries if e["path"] == "spec/versions"] == [seed["version"]]
    assert {"spec/hello", "spec/child"} <= {e["path"] for e in entries}
    assert cluster.client.post("/api/catalog/list", json={}).status_code == 200

    latest = cluster.client.post("/api/catalog/resource", json={"path": "spec/versions"}).json()
    assert latest["version"] == seed["version"] and latest["content"] == text
    old = cluster.client.post("/api/catalog/resource", json={"path": "spec/versions", "version": second["version"]})
    assert "v2" in old.json()["content"] and old.json()["version"] == second["version"]
    by_id = cluster.client.post("/api/catalog/resource", json={"catalog_id": first["catalog_id"]}).json()
    assert by_id["version"] == first["version"]
    for body in ({"path": "spec/versions", "version": 99}, {"path": "no/such"}):
        response = cluster.client.post("/api/catalog/resource", json=body)
        assert response.status_code == 404 and "error" in response.json()


def test_execute_by_path_catalog_id_version_payload_merge_and_aliases(cluster: Cluster) -> None:
    v1 = cluster.register(HELLO.replace("spec/hello", "spec/exec"))
    cluster.register(HELLO.replace("spec/hello", "spec/exec").replace("'hello '", "'hi '"))

    def run(route: str, body: dict[str, Any]) -> dict[str, Any]:
        response = cluster.client.post(route, json=body)
        assert response.status_code == 200, response.text
        started = response.json()
        assert started["status"] == "started" and isinstance(started["execution_id"], str)
        return cluster.wait(started["execution_id"])

    latest = run("/api/execute", {"path": "spec/exec", "payload": {"name": "a"}})
    assert latest["steps"]["start"]["result"] == {"greeting": "hi a", "extra": {"a": 1}}
    assert latest["path"] == "spec/exec"
    pinned = run("/api/run/playbook", {"path": "spec/exec", "version": v1["version"], "payload": {"name": "b"}})
    assert pinned["steps"]["start"]["result"]["greeting"] == "hello b"
    by_id = run("/api/v2/execute", {"catalog_id": v1["catalog_id"]})
    assert by_id["steps"]["start"]["result"]["greeting"] == "hello world"
    replaced = run("/api/execute", {"path": "spec/exec", "payload": {"extra": {"b": 2}}})
    assert replaced["steps"]["start"]["result"]["extra"] == {"b": 2}
    merged = run("/api/execute", {"path": "spec/exec", "payload": {"extra": {"b": 2}}, "merge": True})
    assert merged["steps"]["start"]["result"]["extra"] == {"a": 1, "b": 2}

    child = run("/api/execute", {"path": "spec/hello", "parent_execution_id": latest["execution_id"]})
    assert child["parent_execution_id"] == latest["execution_id"]
    listed = cluster.client.get("/api/executions", params={"parent_execution_id": latest["execution_id"]}).json()
    assert [e["execution_id"] for e in listed] == [child["execution_id"]]


def test_execution_listing_row_status_and_events(cluster: Cluster) -> None:
    execution_id = cluster.execute("spec/hello", {"name": "doc"})
    doc = cluster.wait(execution_id)
    assert set(doc) == {"execution_id", "path", "status", "completed", "failed", "current_step", "completed_steps",
                        "steps", "result", "error", "parent_execution_id", "started_at", "ended_at",
                        "duration_seconds", "warnings"}
    assert doc["status"] == "completed" and doc["completed"] is True and doc["failed"] is False
    assert doc["completed_steps"] == ["start", "end"] and doc["error"] is None and doc["current_step"] is None
    assert doc["steps"]["start"] == {"status": "completed", "result": {"greeting": "hello doc", "extra": {"a": 1}}}
    assert isinstance(doc["duration_seconds"], float) and doc["started_at"] <= doc["ended_at"]

    listing = cluster.client.get("/api/executions").json()
    row = next(r for r in listing if r["execution_id"] == execution_id)
    assert set(row) >= {"execution_id", "path", "status", "parent_execution_id", "result", "error", "started_at",
                        "ended_at"} and row["status"] == "completed"
    assert all(r["status"] == "completed" for r in cluster.client.get("/api/executions",
                                                                      params={"status": "completed"}).json())
    assert len(cluster.client.get("/api/executions", params={"limit": 1}).json()) == 1
    full = cluster.client.get(f"/api/executions/{execution_id}").json()
    assert full["payload"] == {"name": "doc"} and full["steps"] == doc["steps"]

    events = cluster.client.get(f"/api/executions/{execution_id}/events").json()
    for event in events:
        assert set(event) >= {"event_id", "execution_id", "event_type", "node_name", "status", "result", "error",
                              "meta", "created_at"}
        assert event["execution_id"] == execution_id
    kinds = [e["event_type"] for e in events]
    assert kinds[0] == "playbook.initialized" and kinds[-1] == "playbook.completed"
    for step in ("start", "end"):
        assert [e["event_type"] for e in events if e["node_name"] == step][:1] == ["step.enter"]
        assert {"call.done", "step.exit"} <= {e["event_type"] for e in events if e["node_name"] == step}
    call = next(e for e in events if e["event_type"] == "call.done" and e["node_name"] == "start")
    assert {"command_id", "attempt", "worker"} <= set(call["meta"])


def test_cancel_cancels_the_execution_and_its_children(cluster: Cluster) -> None:
    execution_id = cluster.execute("spec/slow_parent")
    child_id = until("the child execution", lambda: next(
        (c["execution_id"] for c in cluster.client.get("/api/executions",
                                                     params={"parent_execution_id": execution_id}).json()), None))
    response = cluster.client.post(f"/api/executions/{execution_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["cancelled"] is True and response.json()["execution_id"] == execution_id
    assert cluster.wait(execution_id, timeout=20)["status"] == "cancelled"
    assert cluster.wait(child_id, timeout=20)["status"] == "cancelled"
    events = cluster.client.get(f"/api/executions/{execution_id}/events").json()
    assert "execution.cancelled" in [e["event_type"] for e in events]
    assert cluster.client.post("/api/executions/424242/cancel").status_code == 404


def test_bad_input_is_4xx_json_never_500(cluster: Cluster) -> None:
    invalid = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: x, path: spec/bad}\nworkflow:\n" \
              "  - step: start\n    tool: {kind: nonsense}\n"
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", "/api/catalog/register", "{not json", 422),
        ("POST", "/api/catalog/register", {"content": 5}, 422),
        ("POST", "/api/catalog/register", {"content": ""}, 400),
        ("POST", "/api/catalog/register", {"content": invalid}, 422),
        ("POST", "/api/v2/engine/register-playbook", {}, 400),
        ("POST", "/api/catalog/resource", {"path": 3}, 422),
        ("POST", "/api/catalog/resource", {"path": "spec/hello", "version": "x"}, 400),
        ("POST", "/api/catalog/list", {"kind": []}, 422),
        ("POST", "/api/execute", "[]", 422),
        ("POST", "/api/execute", {}, 400),
        ("POST", "/api/execute", {"path": "spec/hello", "payload": "x"}, 422),
        ("POST", "/api/execute", {"path": "spec/hello", "merge": "maybe"}, 422),
        ("POST", "/api/execute", {"path": "spec/hello", "version": 999}, 404),
        ("POST", "/api/execute", {"catalog_id": "999999"}, 400),
        ("POST", "/api/execute", {"catalog_id": "spec/hello@999"}, 404),
        ("POST", "/api/execute", {"path": "spec/hello", "parent_execution_id": "777"}, 404),
        ("GET", "/api/executions/999", None, 404),
        ("GET", "/api/executions/999/events", None, 404),
        ("GET", "/api/executions?limit=abc", None, 422),
        ("GET", "/api/executions?limit=0", None, 422),
        ("GET", "/api/executions?status=bogus", None, 400),  # not an empty list: no execution has it
        ("GET", "/api/executions/1/events?after_id=x", None, 422),
        ("POST", "/api/credentials", {"name": "x"}, 400),
        ("POST", "/api/credentials", "nope", 422),
        ("GET", "/api/credentials/none-such", None, 404),
    ]
    wrong = []
    for method, path, body, expected in cases:
        content = body if isinstance(body, str) else None if body is None else json.dumps(body)
        response = cluster.client.request(method, path, content=content, headers={"Content-Type": "application/json"})
        error = response.json()
        if response.status_code != expected or not isinstance(error.get("error"), str) or "\n" in error["error"]:
            wrong.append((method, path, body, response.status_code, response.text))
    assert not wrong, wrong
    response = cluster.client.post("/api/catalog/register", json={"content": invalid})
    assert ":6:" in response.text or "line 6" in response.text, response.text


# sections 7 and 8 on the distributed runtime ---------------------------------------------------

def test_child_playbooks_return_step_whole_result_and_failure(cluster: Cluster) -> None:
    doc = cluster.wait(cluster.execute("spec/parent"))
    assert doc["status"] == "completed", doc
    assert doc["steps"]["start"]["result"] == {"doubled": 40}
    assert doc["steps"]["whole"]["result"] == {"final": 6}
    children = cluster.client.get("/api/executions", params={"parent_execution_id": doc["execution_id"]}).json()
    assert len(children) == 2 and all(c["status"] == "completed" for c in children)

    failed = cluster.wait(cluster.execute("spec/failing_parent"))
    assert failed["status"] == "failed"
    child = cluster.client.get("/api/executions", params={"parent_execution_id": failed["execution_id"]}).json()
    assert len(child) == 1 and child[0]["status"] == "failed"
    assert child[0]["execution_id"] in json.dumps(failed["error"]) + json.dumps(failed["steps"]["start"])


def test_credentials_never_return_data_and_secrets_are_redacted(cluster: Cluster) -> None:
    stored = cluster.client.post("/api/credentials", json=CREDENTIAL)
    assert stored.status_code == 200, stored.text
    assert SECRET not in stored.text and "data" not in stored.json()
    assert SECRET not in cluster.client.get("/api/credentials").text
    one = cluster.client.get("/api/credentials/spec_pg")
    assert one.json()["name"] == "spec_pg" and one.json()["type"] == "postgres" and SECRET not in one.text
    rows = cluster.sql("SELECT * FROM noetl.credential")
    assert rows and SECRET not in repr(rows)

    doc = cluster.wait(cluster.execute("spec/secrets"))
    assert doc["status"] == "failed"
    assert doc["steps"]["start"]["result"]["n"] == len(SECRET)
    execution_id = doc["execution_id"]
    for route in (f"/api/executions/{execution_id}/status", f"/api/executions/{execution_id}",
                  f"/api/executions/{execution_id}/events", "/api/executions"):
        text = cluster.client.get(route).text
        assert SECRET not in text, route
        assert "***" in text, route
    assert SECRET not in repr(cluster.sql("SELECT * FROM noetl.event WHERE execution_id = %s", int(execution_id)))

    temp = cluster.client.post("/api/credentials", json={**CREDENTIAL, "name": "spec_tmp"})
    assert temp.status_code == 200
    deleted = cluster.client.delete("/api/credentials/spec_tmp")
    assert deleted.json() == {"name": "spec_tmp", "deleted": True}
    assert cluster.client.get("/api/credentials/spec_tmp").status_code == 404


# section 12: the CLI against the server --------------------------------------------------------

def test_cli_catalog_credential_exec_status_events_cancel(cluster: Cluster, tmp_path: Path) -> None:
    url = ["--server-url", cluster.url]
    playbook = tmp_path / "cli.yaml"
    playbook.write_text(HELLO.replace("spec/hello", "spec/cli"))
    registered = noetl(cluster, *url, "catalog", "register", str(playbook))
    assert registered.returncode == 0, registered.stderr
    listed = noetl(cluster, "catalog", "list", "--json", env={"NOETL_SERVER_URL": cluster.url})
    assert listed.returncode == 0, listed.stderr
    assert "spec/cli" in {e["path"] for e in json.loads(listed.stdout)}
    got = noetl(cluster, "--host", "127.0.0.1", "--port", str(cluster.port), "catalog", "get", "spec/cli")
    assert got.returncode == 0 and "spec/cli" in got.stdout, got.stderr

    credential = tmp_path / "cred.json"
    credential.write_text(json.dumps({**CREDENTIAL, "name": "spec_cli"}))
    made = noetl(cluster, *url, "register", "credential", "-f", str(credential))
    assert made.returncode == 0 and SECRET not in made.stdout + made.stderr, made.stderr
    # the same document `register credential` prints on the local store
    assert [(d["kind"], [c["name"] for c in d["registered"]]) for d in json.loads(made.stdout)] == \
        [("Credential", ["spec_cli"])]
    assert cluster.client.get("/api/credentials/spec_cli").status_code == 200

    submitted = noetl(cluster, *url, "exec", "catalog://spec/cli", "-r", "distributed", "--payload", '{"name": "cli"}')
    assert submitted.returncode == 0, submitted.stderr
    started = json.loads(submitted.stdout)
    assert set(started) >= {"execution_id", "status"}
    execution_id = str(started["execution_id"])
    cluster.wait(execution_id)
    status = noetl(cluster, "--port", str(cluster.port), "status", execution_id, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == cluster.status(execution_id)
    # a refusal is the server's own line, as the same command prints it on the local store
    resumed = noetl(cluster, *url, "resume", execution_id)
    assert resumed.returncode == 2
    assert one_line_error(resumed) == (f"error: execution {execution_id} is completed: only a failed or "
                                       "cancelled execution can be resumed")
    events = noetl(cluster, *url, "events", execution_id, "--json")
    assert events.returncode == 0, events.stderr
    assert json.loads(events.stdout) == cluster.client.get(f"/api/executions/{execution_id}/events").json()

    slow = cluster.execute("spec/slow")
    cancelled = noetl(cluster, *url, "cancel", slow)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cluster.wait(slow, timeout=20)["status"] == "cancelled"


def test_cli_seed_aliases_against_the_server(cluster: Cluster, tmp_path: Path) -> None:
    port = ["--port", str(cluster.port)]
    playbook = tmp_path / "seed.yaml"
    playbook.write_text(HELLO.replace("spec/hello", "spec/seed"))
    registered = noetl(cluster, *port, "playbooks", "--register", str(playbook))
    assert registered.returncode == 0, registered.stderr
    executed = noetl(cluster, *port, "playbooks", "--execute", "--path", "spec/seed", "--payload", '{"name": "seed"}')
    assert executed.returncode == 0, executed.stderr

    ran = noetl(cluster, *port, "execute", "playbook", "spec/seed", "--json")
    assert ran.returncode == 0, ran.stderr
    execution_id = str(json.loads(ran.stdout)["execution_id"])
    cluster.wait(execution_id)
    status = noetl(cluster, *port, "execute", "status", execution_id, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "completed"


def test_cli_dry_run_and_errors_against_the_server(cluster: Cluster, tmp_path: Path) -> None:
    url = ["--server-url", cluster.url]
    dry = noetl(cluster, *url, "exec", "catalog://spec/hello", "-r", "distributed", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "start" in dry.stdout and "end" in dry.stdout
    before = len(cluster.client.get("/api/executions", params={"limit": 10000}).json())

    for command in (["status", "4242"], ["events", "4242"], ["cancel", "4242"]):
        missing = noetl(cluster, *url, *command)
        assert missing.returncode == 2 and "4242" in one_line_error(missing), command
    for ref in ("no/such", "spec/hello@77"):
        absent = noetl(cluster, *url, "catalog", "get", ref)
        assert absent.returncode == 2 and "no catalog entry" in one_line_error(absent)
    serverless = noetl(cluster, "exec", "catalog://spec/hello", "-r", "distributed")
    assert serverless.returncode == 2 and "server" in one_line_error(serverless)
    unknown = noetl(cluster, *url, "exec", "catalog://no/such", "-r", "distributed")
    assert unknown.returncode == 2 and "no/such" in one_line_error(unknown)
    bad_payload = noetl(cluster, *url, "exec", "catalog://spec/hello", "-r", "distributed", "--payload", "[1]")
    assert bad_payload.returncode == 2
    one_line_error(bad_payload)
    wrong_token = noetl(cluster, *url, "catalog", "list", env={"NOETL_API_TOKEN": "wrong"})
    assert wrong_token.returncode == 2 and "token" in one_line_error(wrong_token).lower()
    down = noetl(cluster, "--server-url", "http://127.0.0.1:9", "status", "1")
    assert down.returncode != 0 and "127.0.0.1:9" in one_line_error(down)
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: x, path: spec/inv}\n"
                       "workflow:\n  - step: start\n    tool: {kind: nonsense}\n")
    rejected = noetl(cluster, *url, "catalog", "register", str(invalid))
    assert rejected.returncode == 2
    assert "nonsense" in rejected.stderr and "Traceback" not in rejected.stderr
    assert len(cluster.client.get("/api/executions", params={"limit": 10000}).json()) == before
    assert cluster.client.post("/api/catalog/resource", json={"path": "spec/inv"}).status_code == 404


def test_child_of_a_child_and_children_in_a_parallel_loop(cluster: Cluster) -> None:
    doc = cluster.wait(cluster.execute("spec/grandparent"))
    assert doc["status"] == "completed", doc
    assert doc["steps"]["start"]["result"] == {"final": 6}  # the child's final result: its last step's
    children = cluster.client.get("/api/executions", params={"parent_execution_id": doc["execution_id"]}).json()
    assert len(children) == 1
    grandchildren = cluster.client.get("/api/executions",
                                       params={"parent_execution_id": children[0]["execution_id"]}).json()
    assert len(grandchildren) == 2

    fanned = cluster.wait(cluster.execute("spec/fanout"))
    assert fanned["status"] == "completed", fanned
    assert fanned["steps"]["start"]["result"]["results"] == [{"doubled": 2 * x} for x in range(1, 6)]
    runs = cluster.client.get("/api/executions", params={"parent_execution_id": fanned["execution_id"]}).json()
    assert len(runs) == 5
    spans = sorted((r["started_at"], r["ended_at"]) for r in runs)
    for i, (start, _) in enumerate(spans):  # never more than max_in_flight children at once
        assert sum(1 for s, e in spans[:i] if e > start) <= 1


def test_env_secrets_and_bearer_credentials_stay_out_of_the_api_and_logs(cluster: Cluster, http_server: Any) -> None:
    token = cluster.client.post("/api/credentials", json={"name": "spec_bearer", "type": "bearer",
                                                           "data": {"token": BEARER}})
    assert token.status_code == 200 and BEARER not in token.text
    cluster.register(f"""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: leaky, path: spec/leaky}}
workflow:
  - step: start
    tool: {{kind: http, method: GET, url: "{http_server.url}/echo", auth: spec_bearer}}
    next: [{{step: env}}]
  - step: env
    tool: {{kind: python, input: {{s: "{{{{ secret.SPEC_ENV_SECRET }}}}"}}, code: "result = {{'s': s, 'n': len(s)}}"}}
    next: [{{step: fail}}]
  - step: fail
    tool: {{kind: python, input: {{s: "{{{{ secret.SPEC_ENV_SECRET }}}}"}}, code: "raise ValueError('no ' + s)"}}
""")
    doc = cluster.wait(cluster.execute("spec/leaky"))
    assert doc["status"] == "failed", doc
    assert doc["steps"]["env"]["result"]["n"] == len(ENV_SECRET)
    assert doc["steps"]["start"]["result"] is not None
    execution_id = doc["execution_id"]
    texts = [cluster.client.get(route).text for route in (
        f"/api/executions/{execution_id}/status", f"/api/executions/{execution_id}",
        f"/api/executions/{execution_id}/events", "/api/executions")]
    texts.append(repr(cluster.sql("SELECT * FROM noetl.event WHERE execution_id = %s", int(execution_id))))
    texts.append(repr(cluster.sql("SELECT * FROM noetl.execution WHERE execution_id = %s", int(execution_id))))
    texts += [cluster.log(name) for name in ("server", "w1", "w2")]
    status = noetl(cluster, "--server-url", cluster.url, "status", execution_id)
    events = noetl(cluster, "--server-url", cluster.url, "events", execution_id)
    texts += [status.stdout, status.stderr, events.stdout, events.stderr]
    for text in texts:
        assert BEARER not in text and ENV_SECRET not in text and SECRET not in text, text[:3000]


def test_cancelling_a_finished_execution_changes_nothing(cluster: Cluster) -> None:
    execution_id = cluster.execute("spec/hello")
    doc = cluster.wait(execution_id)
    response = cluster.client.post(f"/api/executions/{execution_id}/cancel")
    assert response.status_code in (200, 409), response.text
    if response.status_code == 200:
        assert response.json()["cancelled"] is False and response.json()["status"] == "completed"
    assert cluster.status(execution_id) == doc


def test_cli_plain_listings_directories_credentials_in_the_catalog_and_auto(cluster: Cluster, tmp_path: Path) -> None:
    url = ["--server-url", cluster.url]
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "a.yaml").write_text(HELLO.replace("spec/hello", "spec/dir_a"))
    (folder / "b.yaml").write_text(HELLO.replace("spec/hello", "spec/dir_b"))
    (folder / "cred.yaml").write_text(json.dumps({**CREDENTIAL, "name": "spec_dir_cred"}))
    registered = noetl(cluster, *url, "catalog", "register", str(folder))
    assert registered.returncode == 0, registered.stderr
    paths = {e["path"] for e in cluster.client.post("/api/catalog/list").json()["entries"]}
    assert {"spec/dir_a", "spec/dir_b"} <= paths
    assert cluster.client.get("/api/credentials/spec_dir_cred").status_code == 200
    assert SECRET not in registered.stdout + registered.stderr

    auto = noetl(cluster, *url, "exec", "catalog://spec/dir_a", "-r", "auto", "--set", "name=auto")
    assert auto.returncode == 0, auto.stderr
    started = json.loads(auto.stdout)  # a catalog reference with a server configured runs on the server
    assert started["status"] == "started"
    assert cluster.wait(str(started["execution_id"]))["steps"]["start"]["result"]["greeting"] == "hello auto"

    inputs = tmp_path / "input.json"
    inputs.write_text('{"name": "from-file"}')
    ran = noetl(cluster, "--port", str(cluster.port), "execute", "playbook", "spec/dir_b", "--input", str(inputs),
                "--json")
    assert ran.returncode == 0, ran.stderr
    doc = cluster.wait(str(json.loads(ran.stdout)["execution_id"]))
    assert doc["steps"]["start"]["result"]["greeting"] == "hello from-file"

    status = noetl(cluster, *url, "status", doc["execution_id"])
    assert status.returncode == 0 and "completed" in status.stdout, status.stderr
    events = noetl(cluster, *url, "events", doc["execution_id"])
    assert events.returncode == 0 and "playbook.completed" in events.stdout, events.stderr
    listed = noetl(cluster, *url, "catalog", "list")
    assert listed.returncode == 0 and "spec/dir_a" in listed.stdout, listed.stderr


def test_status_document_of_a_running_execution(cluster: Cluster) -> None:
    execution_id = cluster.execute("spec/slow")
    deadline = time.monotonic() + 20
    doc = cluster.status(execution_id)
    while doc["current_step"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
        doc = cluster.status(execution_id)
    try:
        assert doc["status"] == "running" and doc["completed"] is False and doc["failed"] is False
        assert doc["current_step"] == "start" and doc["ended_at"] is None and doc["result"] is None
        assert doc["steps"]["start"]["status"] == "running"
    finally:
        cluster.client.post(f"/api/executions/{execution_id}/cancel")
    cancelled = cluster.wait(execution_id, timeout=20)
    assert cancelled["status"] == "cancelled" and cancelled["completed"] is False and cancelled["ended_at"]


def test_sql_endpoint_when_enabled_is_read_only_and_rejects_bad_sql(cluster: Cluster) -> None:
    async def main() -> None:
        app = create_app(ServerConfig(database_url=cluster.database_url, sql_api_enabled=True, api_token=TOKEN))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://noetl.test",
                headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            ok = await client.post("/api/postgres/execute",
                                   json={"query": "SELECT path FROM catalog WHERE path = %s", "params": ["spec/hello"],
                                         "schema": "noetl"})
            assert ok.status_code == 200, ok.text
            assert ok.json()["columns"] == ["path"] and ok.json()["rows"][0] == ["spec/hello"]
            for body in ({"query": "DELETE FROM noetl.catalog"}, {"query": "SELEC nonsense"}, {"query": ""},
                         {"query": 5}):
                response = await client.post("/api/postgres/execute", json=body)
                assert 400 <= response.status_code < 500 and "error" in response.json(), (body, response.text)
            assert (await client.post("/api/postgres/execute", json={"query": "SELECT 1"},
                                      headers={"Authorization": "Bearer no"})).status_code == 401

    asyncio.run(main())
    assert cluster.sql("SELECT count(*) FROM noetl.catalog")[0][0] > 0


def test_cli_schedule_add_trigger_list_and_delete_against_the_server(cluster: Cluster) -> None:
    url = ["--server-url", cluster.url]
    added = noetl(cluster, *url, "schedule", "add", "spec/hello", "--cron", "0 6 * * *", "--tz", "Asia/Tokyo",
                  "--name", "spec-hello", "--payload", '{"name": "scheduled"}')
    assert added.returncode == 0, added.stderr
    assert added.stdout.split()[0] == "spec-hello" and "Asia/Tokyo  enabled" in added.stdout  # a line, not JSON
    paused = noetl(cluster, *url, "schedule", "pause", "spec-hello")
    assert paused.returncode == 0 and paused.stdout.strip().endswith("paused  next -")
    triggered = noetl(cluster, *url, "schedule", "trigger", "spec-hello", "--json")
    assert triggered.returncode == 0, triggered.stderr
    row = json.loads(triggered.stdout)
    assert (row["schedule"], row["status"]) == ("spec-hello", "started")
    assert cluster.wait(row["execution_id"])["status"] == "completed"
    listed = json.loads(noetl(cluster, *url, "schedule", "list", "--json").stdout)
    mine = next(s for s in listed if s["name"] == "spec-hello")
    assert (mine["enabled"], mine["next_fire"], mine["timezone"]) == (False, None, "Asia/Tokyo")
    missing = noetl(cluster, *url, "schedule", "trigger", "no-such")
    assert missing.returncode == 2 and one_line_error(missing) == "error: schedule 'no-such' not found"
    assert noetl(cluster, *url, "schedule", "delete", "spec-hello").returncode == 0
