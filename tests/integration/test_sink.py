"""Sinks into real PostgreSQL and DuckDB tables: insert, upsert, create, data shapes, errors."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.tools import CredentialServices, make_call, open_store, run_async  # noqa: E402

from noetl.errors import ToolError  # noqa: E402
from noetl.tools.duckdb import run_duckdb  # noqa: E402
from noetl.tools.postgres import run_postgres  # noqa: E402
from noetl.tools.sink import rows_from_data, write_sink  # noqa: E402


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NOETL_SECRET_KEY", raising=False)


def pg_doc(pg: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "pg_local",
        "type": "postgres",
        "data": {k: pg[k] for k in ("host", "port", "user", "password", "database")},
    }


def with_pg(pg: dict[str, Any], steps: list[tuple[str, dict[str, Any], Any]]) -> list[Any]:
    """Run ('sql', config, None) and ('sink', config, data) steps in order on one loop."""

    async def main() -> list[Any]:
        services = CredentialServices(await open_store(pg_doc(pg)))
        results = []
        for what, config, data in steps:
            config = {"auth": "pg_local", **config}
            if what == "sql":
                results.append(await run_postgres(config, make_call(services)))
            else:
                results.append(await write_sink({"tool": "postgres", **config}, data, make_call(services)))
        return results

    result: list[Any] = run_async(main)
    return result


def new_table() -> str:
    return "sink_" + uuid.uuid4().hex[:10]


def test_rows_come_from_lists_mappings_and_tool_results() -> None:
    assert rows_from_data([{"a": 1}]) == [{"a": 1}]
    assert rows_from_data({"a": 1}) == [{"a": 1}]
    assert rows_from_data({"status": "ok", "rows": [{"a": 2}], "row_count": 1}) == [{"a": 2}]
    assert rows_from_data({"status_code": 200, "data": [{"a": 3}]}) == [{"a": 3}]
    assert rows_from_data(None) == []
    with pytest.raises(ToolError):
        rows_from_data([1, 2])


def test_postgres_insert_with_json_and_array_columns(pg_cluster: dict[str, Any]) -> None:
    table = new_table()
    rows = [
        {"id": 1, "name": "a", "doc": {"k": [1, 2]}, "tags": ["x", "y"], "at": "2024-05-01T10:00:00+00:00"},
        {"id": 2, "name": None, "doc": None, "tags": [], "at": None},
    ]
    _, written, read = with_pg(
        pg_cluster,
        [
            (
                "sql",
                {
                    "command": f"CREATE TABLE {table} (id int, name text, doc jsonb, tags text[], at timestamptz)"
                },
                None,
            ),
            ("sink", {"table": table}, rows),
            ("sql", {"command": f"SELECT id, name, doc, tags, at FROM {table} ORDER BY id"}, None),
        ],
    )
    assert written == {"status": "ok", "table": table, "rows_written": 2}
    assert read["rows"] == [
        {"id": 1, "name": "a", "doc": {"k": [1, 2]}, "tags": ["x", "y"], "at": "2024-05-01T10:00:00+00:00"},
        {"id": 2, "name": None, "doc": None, "tags": [], "at": None},
    ]


def test_postgres_upsert_updates_by_key_and_last_duplicate_wins(pg_cluster: dict[str, Any]) -> None:
    table = new_table()
    results = with_pg(
        pg_cluster,
        [
            ("sql", {"command": f"CREATE TABLE {table} (id int PRIMARY KEY, score int, note text)"}, None),
            (
                "sink",
                {"table": table},
                [{"id": 1, "score": 1, "note": "old"}, {"id": 2, "score": 2, "note": "keep"}],
            ),
            (
                "sink",
                {"table": table, "mode": "upsert", "key": "id"},
                {
                    "rows": [
                        {"id": 1, "score": 10, "note": "first"},
                        {"id": 3, "score": 3, "note": "new"},
                        {"id": 1, "score": 11, "note": "last"},
                    ]
                },
            ),
            ("sql", {"command": f"SELECT * FROM {table} ORDER BY id"}, None),
        ],
    )
    assert results[2]["rows_written"] == 2
    assert results[3]["rows"] == [
        {"id": 1, "score": 11, "note": "last"},
        {"id": 2, "score": 2, "note": "keep"},
        {"id": 3, "score": 3, "note": "new"},
    ]


def test_postgres_missing_table_is_an_error_unless_create(pg_cluster: dict[str, Any]) -> None:
    table = new_table()
    with pytest.raises(ToolError) as caught:
        with_pg(pg_cluster, [("sink", {"table": table}, [{"a": 1}])])
    assert caught.value.kind == "sink"
    assert "create: true" in caught.value.message
    results = with_pg(
        pg_cluster,
        [
            (
                "sink",
                {"table": table, "create": True, "mode": "upsert", "key": ["a"]},
                [{"a": 1, "b": "x", "c": {"n": 1}, "d": 1.5, "e": True}],
            ),
            (
                "sink",
                {"table": table, "mode": "upsert", "key": ["a"]},
                [{"a": 1, "b": "y", "c": {"n": 2}, "d": 2.5, "e": False}],
            ),
            ("sql", {"command": f"SELECT * FROM {table}"}, None),
        ],
    )
    assert results[2]["rows"] == [{"a": 1, "b": "y", "c": {"n": 2}, "d": 2.5, "e": False}]


def test_postgres_unknown_column_and_upsert_without_key(pg_cluster: dict[str, Any]) -> None:
    table = new_table()
    with pytest.raises(ToolError) as caught:
        with_pg(
            pg_cluster,
            [
                ("sql", {"command": f"CREATE TABLE {table} (a int)"}, None),
                ("sink", {"table": table}, [{"a": 1, "zzz": 2}]),
            ],
        )
    assert "'zzz'" in caught.value.message
    with pytest.raises(ToolError) as caught:
        with_pg(pg_cluster, [("sink", {"table": table, "mode": "upsert"}, [{"a": 1}])])
    assert caught.value.kind == "config"


def test_postgres_100k_rows_insert_and_upsert_are_fast(pg_cluster: dict[str, Any]) -> None:
    table = new_table()
    rows = [{"id": i, "name": f"row {i}", "payload": {"i": i}} for i in range(100_000)]
    started = time.perf_counter()
    results = with_pg(
        pg_cluster,
        [
            (
                "sql",
                {"command": f"CREATE TABLE {table} (id int PRIMARY KEY, name text, payload jsonb)"},
                None,
            ),
            ("sink", {"table": table}, rows),
            (
                "sink",
                {"table": table, "mode": "upsert", "key": "id"},
                [{**r, "name": "updated"} for r in rows],
            ),
            (
                "sql",
                {
                    "command": f"SELECT count(*) AS n, count(*) FILTER (WHERE name = 'updated') AS u FROM {table}"
                },
                None,
            ),
        ],
    )
    elapsed = time.perf_counter() - started
    assert results[1]["rows_written"] == 100_000
    assert results[2]["rows_written"] == 100_000
    assert results[3]["rows"] == [{"n": 100_000, "u": 100_000}]
    assert elapsed < 30, f"100k-row sink took {elapsed:.1f}s"


# --- DuckDB -----------------------------------------------------------------------------------


def duck(steps: list[tuple[str, dict[str, Any], Any]], database: str) -> list[Any]:
    async def main() -> list[Any]:
        results = []
        for what, config, data in steps:
            config = {"database": database, **config}
            if what == "sql":
                results.append(await run_duckdb(config, make_call()))
            else:
                results.append(await write_sink({"tool": "duckdb", **config}, data, make_call()))
        return results

    result: list[Any] = run_async(main)
    return result


def test_duckdb_insert_upsert_and_create(tmp_path: Path) -> None:
    database = str(tmp_path / "sink.duckdb")
    results = duck(
        [
            (
                "sink",
                {"table": "events", "create": True, "mode": "upsert", "key": "id"},
                [{"id": 1, "doc": {"a": 1}, "n": 1.5}],
            ),
            (
                "sink",
                {"table": "events", "mode": "upsert", "key": "id"},
                [{"id": 1, "doc": {"a": 2}, "n": 2.5}, {"id": 2, "doc": None, "n": None}],
            ),
            ("sink", {"table": "events"}, {"id": 3, "doc": [1, 2], "n": 0.5}),
            ("sql", {"command": "SELECT * FROM events ORDER BY id"}, None),
        ],
        database,
    )
    assert [r["rows_written"] for r in results[:3]] == [1, 2, 1]
    assert results[3]["rows"] == [
        {"id": 1, "doc": {"a": 2}, "n": 2.5},
        {"id": 2, "doc": None, "n": None},
        {"id": 3, "doc": [1, 2], "n": 0.5},
    ]


def test_duckdb_json_text_for_a_json_column_is_stored_as_the_structure(tmp_path: Path) -> None:
    # A v1 save binds `results_json: '{{ results | tojson }}'`: PostgreSQL's jsonb reads that text as
    # the array; DuckDB's JSON column must too (it held a string of the JSON). Text that is not JSON
    # stays a string.
    results = duck(
        [
            ("sql", {"command": "CREATE TABLE agg (id TEXT PRIMARY KEY, doc JSON, label TEXT)"}, None),
            ("sink", {"table": "agg", "mode": "upsert", "key": "id"},
             [{"id": "a", "doc": '[{"value": 1}, {"value": 2}]', "label": '{"x": 1}'},
              {"id": "b", "doc": "plain words", "label": "null"},
              {"id": "c", "doc": "null", "label": None}]),
            ("sql", {"command": "SELECT id, json_type(doc) AS type, doc, label FROM agg ORDER BY id"}, None),
        ],
        str(tmp_path / "json.duckdb"),
    )
    assert results[2]["rows"] == [
        {"id": "a", "type": "ARRAY", "doc": [{"value": 1}, {"value": 2}], "label": '{"x": 1}'},
        {"id": "b", "type": "VARCHAR", "doc": "plain words", "label": "null"},
        {"id": "c", "type": None, "doc": None, "label": None},  # not the string "null"
    ]


def test_duckdb_missing_table_and_100k_rows(tmp_path: Path) -> None:
    database = str(tmp_path / "big.duckdb")
    with pytest.raises(ToolError) as caught:
        duck([("sink", {"table": "nope"}, [{"a": 1}])], database)
    assert caught.value.kind == "sink"
    rows = [{"id": i, "name": f"n{i}"} for i in range(100_000)]
    started = time.perf_counter()
    results = duck(
        [
            ("sql", {"command": "CREATE TABLE big (id INTEGER PRIMARY KEY, name VARCHAR)"}, None),
            ("sink", {"table": "big"}, rows),
            ("sql", {"command": "SELECT count(*) AS n FROM big"}, None),
        ],
        database,
    )
    assert results[2]["rows"] == [{"n": 100_000}]
    assert time.perf_counter() - started < 30
