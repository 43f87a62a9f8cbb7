"""`kind: transfer` through the `noetl` command: PostgreSQL, DuckDB and HTTP sources, PostgreSQL and
DuckDB targets, mapping, casting to the target's column types, the three modes, and bad input."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from acceptance.test_data_tools import register_pg, write

HEADER = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: transfer_test}
workflow:
"""


def run_steps(noetl: Any, tmp_path: Path, steps: str) -> dict[str, Any]:
    result = noetl("run", write(tmp_path, HEADER + steps, f"t{uuid.uuid4().hex[:6]}.yaml"), "--json")
    assert result.code == 0, result.stdout + result.stderr
    doc: dict[str, Any] = result.json()
    assert doc["status"] == "completed", doc["error"]
    return doc


@pytest.fixture
def pg(noetl: Any, tmp_path: Path, pg_cluster: dict[str, Any]) -> Any:
    register_pg(noetl, tmp_path, pg_cluster)

    def sql(query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(pg_cluster["url"], autocommit=True) as conn:
            cursor = conn.execute(query)
            return cursor.fetchall() if cursor.description else []

    return sql


def test_postgres_to_postgres_maps_casts_and_counts_chunks(noetl: Any, tmp_path: Path, pg: Any) -> None:
    src, dst = f"src_{uuid.uuid4().hex[:8]}", f"dst_{uuid.uuid4().hex[:8]}"
    pg(f"CREATE TABLE {src} (id int, name text, price numeric(8,2), tags jsonb, note text)")
    pg(f"INSERT INTO {src} SELECT g, 'item ' || g, g * 1.5, jsonb_build_object('n', g), "
       f"CASE WHEN g % 2 = 0 THEN E'line\\none' END FROM generate_series(1, 2500) AS g")
    pg(f"CREATE TABLE {dst} (pid bigint PRIMARY KEY, label text, cost double precision, meta jsonb, "
       "note text, price_text text)")
    doc = run_steps(noetl, tmp_path, f"""\
  - step: start
    tool:
      kind: transfer
      source: {{type: postgres, auth: pg_local, query: "SELECT * FROM {src} WHERE id >= %(low)s",
               params: {{low: 1}}}}
      target:
        type: postgres
        auth: pg_local
        table: {dst}
        mapping: {{pid: id, label: name, cost: price, meta: tags, note: note, price_text: price}}
      chunk_size: 1000
""")
    assert doc["steps"]["start"]["result"] == {"rows_read": 2500, "rows_written": 2500, "chunks": 3}
    assert pg(f"SELECT pid, label, cost, meta, note, price_text FROM {dst} WHERE pid IN (1, 2) ORDER BY pid") == [
        (1, "item 1", 1.5, {"n": 1}, None, "1.50"), (2, "item 2", 3.0, {"n": 2}, "line\none", "3.00")]

    # upsert: changed rows replace theirs by key, new ones are added; replace: the table is emptied first
    pg(f"UPDATE {src} SET name = 'changed' WHERE id <= 10")
    pg(f"INSERT INTO {src} (id, name) VALUES (2501, 'new')")
    doc = run_steps(noetl, tmp_path, f"""\
  - step: start
    tool:
      kind: transfer
      source: {{type: postgres, auth: pg_local, query: "SELECT id, name FROM {src} WHERE id <= 10 OR id > 2500"}}
      target: {{type: postgres, auth: pg_local, table: {dst}, mapping: {{pid: id, label: name}}, mode: upsert,
               key: pid}}
      chunk_size: 4
""")
    assert doc["steps"]["start"]["result"] == {"rows_read": 11, "rows_written": 11, "chunks": 3}
    assert pg(f"SELECT count(*), count(*) FILTER (WHERE label = 'changed') FROM {dst}") == [(2501, 10)]
    doc = run_steps(noetl, tmp_path, f"""\
  - step: start
    tool:
      kind: transfer
      source: {{type: postgres, auth: pg_local, query: "SELECT id AS pid, name AS label FROM {src} LIMIT 5"}}
      target: {{type: postgres, auth: pg_local, table: {dst}, mode: replace}}
""")
    assert doc["steps"]["start"]["result"] == {"rows_read": 5, "rows_written": 5, "chunks": 1}
    assert pg(f"SELECT count(*) FROM {dst}") == [(5,)]


def test_http_list_into_postgres_casts_to_the_column_types(noetl: Any, tmp_path: Path, pg: Any,
                                                           http_server: Any) -> None:
    dst = f"people_{uuid.uuid4().hex[:8]}"
    pg(f"CREATE TABLE {dst} (id int PRIMARY KEY, name text, active boolean, score numeric, born date, "
       "city text, extra jsonb)")
    people = [{"id": "1", "name": "Ada", "active": "yes", "score": "9.5", "born": "1815-12-10",
               "address": {"city": "London"}, "extra": {"k": [1, 2]}},
              {"id": 2.0, "name": "Alan", "active": False, "score": 7, "born": None,
               "address": {"city": "Wilmslow"}, "extra": None}]
    doc = run_steps(noetl, tmp_path, f"""\
  - step: start
    tool:
      kind: transfer
      source:
        type: http
        url: "{http_server.url}/echo"
        method: POST
        json: {json.dumps(people)}
        path: json
      target:
        type: postgres
        auth: pg_local
        table: {dst}
        mapping: {{id: id, name: name, active: active, score: score, born: born, city: address.city, extra: extra}}
""")
    assert doc["steps"]["start"]["result"] == {"rows_read": 2, "rows_written": 2, "chunks": 1}
    rows = pg(f"SELECT id, name, active, score::text, born::text, city, extra FROM {dst} ORDER BY id")
    assert rows == [(1, "Ada", True, "9.5", "1815-12-10", "London", {"k": [1, 2]}),
                    (2, "Alan", False, "7", None, "Wilmslow", None)]


def test_a_value_that_cannot_be_cast_fails_the_step_naming_row_and_column(noetl: Any, tmp_path: Path, pg: Any,
                                                                           http_server: Any) -> None:
    dst = f"bad_{uuid.uuid4().hex[:8]}"
    pg(f"CREATE TABLE {dst} (id int)")
    path = write(tmp_path, HEADER + f"""\
  - step: start
    tool:
      kind: transfer
      source: {{type: http, url: "{http_server.url}/echo", method: POST, json: [{{id: 1}}, {{id: "x1"}}], path: json}}
      target: {{type: postgres, auth: pg_local, table: {dst}}}
""")
    result = noetl("run", path, "--json")
    assert result.code == 1
    error = result.json()["error"]
    assert "row 1" in error and "'id'" in error and "x1" in error
    assert pg(f"SELECT count(*) FROM {dst}") == [(0,)]  # nothing half-written


def test_postgres_to_duckdb_and_back(noetl: Any, tmp_path: Path, pg: Any) -> None:
    src, back = f"ducks_{uuid.uuid4().hex[:8]}", f"back_{uuid.uuid4().hex[:8]}"
    database = tmp_path / "local.duckdb"
    pg(f"CREATE TABLE {src} (id int, name text)")
    pg(f"INSERT INTO {src} SELECT g, 'd' || g FROM generate_series(1, 25) AS g")
    pg(f"CREATE TABLE {back} (id int, name text)")
    with duckdb.connect(str(database)) as conn:
        conn.execute("CREATE TABLE ducks (id INTEGER PRIMARY KEY, name VARCHAR)")
    doc = run_steps(noetl, tmp_path, f"""\
  - step: start
    tool:
      kind: transfer
      source: {{type: postgres, auth: pg_local, query: "SELECT id, name FROM {src}"}}
      target: {{type: duckdb, database: "{database}", table: ducks, mode: upsert, key: id}}
      chunk_size: 10
    next: [{{step: back}}]
  - step: back
    tool:
      kind: transfer
      source: {{type: duckdb, database: "{database}", query: "SELECT id, upper(name) AS name FROM ducks"}}
      target: {{type: postgres, auth: pg_local, table: {back}}}
      chunk_size: 10
""")
    assert doc["steps"]["start"]["result"] == {"rows_read": 25, "rows_written": 25, "chunks": 3}
    assert doc["steps"]["back"]["result"] == {"rows_read": 25, "rows_written": 25, "chunks": 3}
    assert pg(f"SELECT count(*), min(name) FROM {back}") == [(25, "D1")]


BAD = HEADER + """\
  - step: start
    tool:
      kind: transfer
{body}
"""


@pytest.mark.parametrize(("body", "line", "message"), [
    ("      target: {type: postgres, auth: pg, table: t}", 6, "transfer needs `source:`"),
    ("      source: {type: postgres, auth: pg, query: 'SELECT 1'}", 6, "transfer needs `target:`"),
    ("      source: {type: mysql, query: 'SELECT 1'}\n      target: {type: postgres, table: t}", 8,
     "unknown transfer source type 'mysql'"),
    ("      source: {type: http, url: 'http://x'}\n      target: {type: s3, table: t}", 9,
     "unknown transfer target type 's3'"),
    ("      source: {type: http, url: 'http://x'}\n      target: {type: postgres, table: t, mode: merge}", 9,
     "transfer target mode 'merge' is not supported"),
    ("      source: {type: http, url: 'http://x'}\n      target: {type: postgres, table: t, mode: upsert}", 9,
     "mode upsert needs `key`"),
])
def test_bad_transfers_are_found_before_anything_runs(noetl: Any, tmp_path: Path, body: str, line: int,
                                                      message: str) -> None:
    path = write(tmp_path, BAD.replace("{body}", body))
    result = noetl("validate", path)
    output = result.stdout + result.stderr
    assert result.code == 2, output
    assert message in output and f"{path}:{line}:" in output and "Traceback" not in output


def test_a_failure_in_the_middle_of_a_copy_pipe_leaves_the_target_as_it_was(noetl: Any, tmp_path: Path,
                                                                              pg: Any) -> None:
    src, dst = f"mid_{uuid.uuid4().hex[:8]}", f"mid_dst_{uuid.uuid4().hex[:8]}"
    pg(f"CREATE TABLE {src} (id int, code text)")
    pg(f"INSERT INTO {src} SELECT g, CASE WHEN g = 1500 THEN 'x1500' ELSE g::text END "
       "FROM generate_series(1, 2000) AS g")
    pg(f"CREATE TABLE {dst} (id int, code int)")
    pg(f"INSERT INTO {dst} VALUES (0, 0)")
    path = write(tmp_path, HEADER + f"""\
  - step: start
    tool:
      kind: transfer
      source: {{type: postgres, auth: pg_local, query: "SELECT id, code FROM {src} ORDER BY id"}}
      target: {{type: postgres, auth: pg_local, table: {dst}, mode: replace}}
      chunk_size: 1000
""")
    result = noetl("run", path, "--json")
    assert result.code == 1, result.stdout + result.stderr
    error = result.json()["steps"]["start"]["error"]
    # the row and the column, as for the other sources (PostgreSQL's own message names neither)
    assert error["kind"] == "data", error
    assert "row 1499: cannot cast 'code' = 'x1500' to the type of column 'code'" in error["message"], error
    assert pg(f"SELECT id, code FROM {dst}") == [(0, 0)]  # the first chunk and the TRUNCATE rolled back


def test_a_copy_pipe_value_of_the_wrong_kind_names_the_row_and_the_column(noetl: Any, tmp_path: Path,
                                                                           pg: Any) -> None:
    src, dst = f"kind_{uuid.uuid4().hex[:8]}", f"kind_dst_{uuid.uuid4().hex[:8]}"
    pg(f"CREATE TABLE {src} (id int, meta jsonb)")
    pg(f"INSERT INTO {src} VALUES (1, '3'), (2, '{{\"g\": 2}}')")
    pg(f"CREATE TABLE {dst} (id int, total numeric)")
    path = write(tmp_path, HEADER + f"""\
  - step: start
    tool:
      kind: transfer
      source: {{type: postgres, auth: pg_local, query: "SELECT id, meta FROM {src} ORDER BY id"}}
      target: {{type: postgres, auth: pg_local, table: {dst}, mapping: {{id: id, total: meta}}}}
""")
    result = noetl("run", path, "--json")
    assert result.code == 1, result.stdout + result.stderr
    message = result.json()["steps"]["start"]["error"]["message"]
    assert "row 1: cannot cast 'meta' = {'g': 2} to the type of column 'total': not a number" in message, message
    assert pg(f"SELECT count(*) FROM {dst}") == [(0,)]


def test_a_source_query_that_fails_by_itself_reports_postgres_message(noetl: Any, tmp_path: Path,
                                                                      pg: Any) -> None:
    # A data error of the user's query (class 22, like a cast's) that reading the rows again repeats:
    # the step fails with PostgreSQL's message, not with the second read's unhandled error.
    dst = f"div_dst_{uuid.uuid4().hex[:8]}"
    pg(f"CREATE TABLE {dst} (n int)")
    path = write(tmp_path, HEADER + f"""\
  - step: start
    tool:
      kind: transfer
      source: {{type: postgres, auth: pg_local, query: "SELECT 10 / (g - 3) AS n FROM generate_series(1, 5) AS g"}}
      target: {{type: postgres, auth: pg_local, table: {dst}}}
""")
    result = noetl("run", path, "--json")
    assert result.code == 1, result.stdout + result.stderr
    error = result.json()["steps"]["start"]["error"]
    assert error["kind"] == "sql" and error["sqlstate"] == "22012", error
    assert "division by zero" in error["message"], error
    assert "Traceback" not in result.stdout + result.stderr
    assert pg(f"SELECT count(*) FROM {dst}") == [(0,)]
