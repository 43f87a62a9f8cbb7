"""The data tools through the `noetl` command: real PostgreSQL, real local HTTP, registered credentials.

Also the bad input of the tools issue: each failure names the step and the tool, secrets never
reach the event log, the status document or the error message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SECRET = "s3cr3t-token-value-42"

PIPELINE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: data_tools}
workload: {api: "http://127.0.0.1:1", pg_auth: pg_local, table: public.items_{suffix}}
workflow:
  - step: start
    tool:
      kind: http
      url: "{{ api }}/echo"
      headers: {Authorization: "Bearer {{ secret.NOETL_DEMO_TOKEN }}"}
      params: {q: "fruit"}
    next: {arcs: [{step: create}]}
  - step: create
    tool:
      kind: postgres
      auth: "{{ pg_auth }}"
      command: |
        CREATE TABLE IF NOT EXISTS {{ table }} (id int PRIMARY KEY, name text, price numeric);
        DELETE FROM {{ table }};
    next: {arcs: [{step: load}]}
  - step: load
    tool:
      - name: rows
        kind: python
        input: {q: "{{ start.data.query.q }}"}
        code: "result = [{'id': i, 'name': f'{q}-{i}', 'price': i * 1.5} for i in range(1, 6)]"
      - name: store
        kind: sink
        tool: postgres
        auth: "{{ pg_auth }}"
        table: "{{ table }}"
        mode: upsert
        key: id
    next: {arcs: [{step: read}]}
  - step: read
    tool:
      kind: postgres
      auth: "{{ pg_auth }}"
      query: "SELECT count(*) AS n, sum(price) AS total FROM {{ table }} WHERE id >= %(low)s"
      params: {low: 2}
    next: {arcs: [{step: crunch}]}
  - step: crunch
    tool:
      kind: duckdb
      database: ":memory:"
      query: "SELECT {{ read.rows[0].n }} * 2 AS doubled"
"""


def register_pg(noetl, tmp_path: Path, pg: dict[str, Any], name: str = "pg_local") -> None:  # type: ignore[no-untyped-def]
    cred = tmp_path / f"{name}.json"
    cred.write_text(json.dumps({"name": name, "type": "postgres", "data": {
        "db_host": pg["host"], "db_port": pg["port"], "username": pg["user"], "password": pg["password"],
        "dbname": pg["database"]}}))
    result = noetl("register", "credential", "-f", str(cred))
    assert result.code == 0, result.stderr
    assert pg["password"] not in result.stdout


def write(tmp_path: Path, text: str, name: str = "pb.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_http_postgres_sink_duckdb_end_to_end(noetl, tmp_path: Path, pg_cluster, http_server) -> None:  # type: ignore[no-untyped-def]
    register_pg(noetl, tmp_path, pg_cluster)
    listed = noetl("credential", "list", "--json").json()
    assert [c["name"] for c in listed] == ["pg_local"] and "data" not in listed[0]
    playbook = write(tmp_path, PIPELINE.replace("{suffix}", "e2e"))
    result = noetl("run", playbook, "--json", "--set", f"api={http_server.url}", env={"NOETL_DEMO_TOKEN": SECRET})
    doc = result.json()
    assert result.code == 0, doc["error"]
    assert doc["steps"]["read"]["result"]["rows"] == [{"n": 4, "total": 21}]
    assert doc["steps"]["load"]["result"]["rows_written"] == 5
    assert doc["result"]["rows"] == [{"doubled": 8}]
    seen = [r for r in http_server.requests if r["path"] == "/echo"][-1]
    assert seen["headers"].get("Authorization") == f"Bearer {SECRET}"  # the real value reached the API
    events = noetl("events", doc["execution_id"], "--json")
    assert SECRET not in events.stdout and SECRET not in result.stdout
    assert SECRET not in noetl("status", doc["execution_id"], "--json").stdout
    assert "***" in events.stdout  # the echoed header came back redacted


BAD = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: bad}
workload: {api: "http://127.0.0.1:1"}
workflow:
  - step: start
    tool: TOOL
"""


@pytest.mark.parametrize(
    ("tool", "fragments"),
    [
        ("{kind: postgres, auth: nope, query: 'SELECT 1'}", ["step 'start' (postgres) failed", "credential 'nope' not found"]),
        ("{kind: postgres, auth: api_token, query: 'SELECT 1'}", ["step 'start' (postgres) failed", "api_token"]),
        ("{kind: postgres, auth: pg_local, query: 'SELEC 1'}", ["step 'start' (postgres) failed", "syntax error"]),
        ("{kind: postgres, auth: pg_dead, query: 'SELECT 1'}", ["step 'start' (postgres) failed"]),
        ("{kind: http, url: '{{ api }}/badjson'}", ["step 'start' (http) failed", "JSON"]),
        ("{kind: http, url: 'http://127.0.0.1:9/x', timeout: 2}", ["step 'start' (http) failed"]),
        ("{kind: python, script: {uri: ./missing.py, source: {type: file}}}", ["step 'start' (python) failed", "missing.py"]),
    ],
    ids=["unknown-credential", "wrong-credential-type", "sql-error", "unreachable-db", "invalid-json",
         "unreachable-host", "missing-script"],
)
def test_tool_failures_name_step_tool_and_cause(noetl, tmp_path: Path, pg_cluster, http_server,  # type: ignore[no-untyped-def]
                                                tool: str, fragments: list[str]) -> None:
    register_pg(noetl, tmp_path, pg_cluster)
    dead = {**pg_cluster, "port": 9}
    register_pg(noetl, tmp_path, dead, name="pg_dead")
    token = tmp_path / "token.json"
    token.write_text(json.dumps({"name": "api_token", "type": "bearer", "data": {"token": SECRET}}))
    assert noetl("register", "credential", "-f", str(token)).code == 0
    result = noetl("run", write(tmp_path, BAD.replace("TOOL", tool)), "--json", "--set", f"api={http_server.url}")
    assert result.code == 1, result.stderr
    doc = result.json()
    assert doc["status"] == "failed"
    for fragment in fragments:
        assert fragment in doc["error"], doc["error"]
    assert "\n" not in doc["error"].strip()
    assert pg_cluster["password"] not in result.stdout and SECRET not in result.stdout
    row = noetl("query", f"SELECT * FROM execution WHERE execution_id = '{doc['execution_id']}'", "--format", "json")
    assert row.code == 0 and SECRET not in row.stdout and pg_cluster["password"] not in row.stdout
    assert "Traceback" not in result.stderr
    replay = noetl("status", doc["execution_id"], "--json").json()
    assert replay == doc  # the execution record is consistent


def test_credentials_list_without_data_and_delete(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cred = tmp_path / "api.yaml"
    cred.write_text(f"kind: Credential\nname: api\ntype: bearer\ndata: {{token: {SECRET}}}\n")
    assert noetl("catalog", "register", str(cred)).code == 0  # a credential file through the catalog command
    listed = noetl("credential", "list", "--json")
    assert [c["name"] for c in listed.json()] == ["api"] and SECRET not in listed.stdout
    assert SECRET.encode() not in (tmp_path / "home" / "noetl.db").read_bytes()  # encrypted at rest
    deleted = noetl("credential", "delete", "api")
    assert deleted.code == 0 and deleted.stdout.strip() == "deleted credential api"  # a line, as hook delete says
    assert noetl("credential", "list", "--json").json() == []
    assert "credential 'api' not found" in noetl("credential", "delete", "api").stderr


def test_a_secret_in_a_failure_message_is_redacted_everywhere(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = write(tmp_path, """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: leaky}
workflow:
  - step: start
    tool: {kind: python, input: {t: "{{ secret.NOETL_DEMO_TOKEN }}"}, code: "raise ValueError('bad token ' + t)"}
""")
    result = noetl("run", playbook, "--json", env={"NOETL_DEMO_TOKEN": SECRET})
    doc = result.json()
    assert result.code == 1 and "bad token ***" in doc["error"]
    row = noetl("query", f"SELECT * FROM execution WHERE execution_id = '{doc['execution_id']}'", "--format", "json")
    events = noetl("events", doc["execution_id"], "--json")
    for text in (result.stdout, result.stderr, row.stdout, events.stdout):
        assert SECRET not in text


BASE64_JSON_PARAMETER = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: reservation_hold}
workload:
  request: {unit_id: 7, guests: 2, note: "O'Hara"}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_local
      params:
        - "{{ request | tojson | b64encode }}"
      command: |
        WITH p AS MATERIALIZED (SELECT convert_from(decode($1::text,'base64'),'UTF8')::jsonb AS j)
        SELECT (j->>'unit_id')::bigint AS unit_id, (j->>'guests')::integer AS guests, j->>'note' AS note FROM p;
"""


def test_caller_data_bound_as_one_base64_json_parameter(noetl, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        pg_cluster: dict[str, Any]) -> None:
    # As NoETL's own reservation playbooks bind it: $1 with `params: ["{{ request | tojson | b64encode }}"]`
    register_pg(noetl, tmp_path, pg_cluster)
    result = noetl("run", write(tmp_path, BASE64_JSON_PARAMETER), "--json")
    doc = result.json()
    assert result.code == 0, doc["error"]
    assert doc["steps"]["start"]["result"]["rows"] == [{"unit_id": 7, "guests": 2, "note": "O'Hara"}]
