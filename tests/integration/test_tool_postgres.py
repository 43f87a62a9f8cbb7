"""The postgres tool against a real throwaway PostgreSQL (password auth over TCP)."""

from __future__ import annotations

import base64
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.pgcluster import free_port  # noqa: E402
from support.tools import CredentialServices, make_call, open_store, run_async  # noqa: E402

from noetl.errors import ToolError  # noqa: E402
from noetl.tools.base import ToolCall  # noqa: E402
from noetl.tools.postgres import run_postgres  # noqa: E402


@pytest.fixture(autouse=True)
def _credential_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NOETL_SECRET_KEY", raising=False)


def credential_docs(pg: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": "pg_local",
            "type": "postgres",
            "data": {
                "host": pg["host"],
                "port": pg["port"],
                "user": pg["user"],
                "password": pg["password"],
                "database": pg["database"],
            },
        },
        {
            # the v1 field spellings
            "name": "pg_v1_fields",
            "type": "postgres",
            "data": {
                "db_host": pg["host"],
                "db_port": str(pg["port"]),
                "db_user": pg["user"],
                "db_password": pg["password"],
                "db_name": pg["database"],
            },
        },
        {
            "name": "pg_wrong_password",
            "type": "postgres",
            "data": {
                **{k: pg[k] for k in ("host", "port", "user", "database")},
                "password": "not-the-password-123",
            },
        },
    ]


def run_sql(
    pg: dict[str, Any], config: dict[str, Any], *, playbook_dir: Path | None = None
) -> tuple[Any, ToolCall]:
    async def main() -> tuple[Any, ToolCall]:
        services = CredentialServices(await open_store(*credential_docs(pg)))
        call = make_call(services, playbook_dir=playbook_dir)
        config.setdefault("auth", "pg_local")
        return await run_postgres(config, call), call

    result: tuple[Any, ToolCall] = run_async(main)
    return result


def sql_error(pg: dict[str, Any], config: dict[str, Any]) -> ToolError:
    with pytest.raises(ToolError) as caught:
        run_sql(pg, config)
    return caught.value


def table_name() -> str:
    return "t_" + uuid.uuid4().hex[:10]


def test_select_returns_rows_as_dicts_with_columns(pg_cluster: dict[str, Any]) -> None:
    result, _ = run_sql(
        pg_cluster, {"command": "SELECT 1 AS one, 'a' AS letter UNION ALL SELECT 2, 'b' ORDER BY 1"}
    )
    assert result["status"] == "ok"
    assert result["columns"] == ["one", "letter"]
    assert result["rows"] == [{"one": 1, "letter": "a"}, {"one": 2, "letter": "b"}]
    assert result["row_count"] == 2
    assert result["statement_count"] == 1
    assert result["command_0"] == {"rows": result["rows"], "row_count": 2, "columns": ["one", "letter"]}


def test_many_statements_each_get_a_command_entry_and_the_last_is_mirrored(
    pg_cluster: dict[str, Any],
) -> None:
    table = table_name()
    script = f"""
        -- a comment; with a semicolon
        CREATE TABLE {table} (id int primary key, note text);
        INSERT INTO {table} VALUES (1, 'semi;colon'), (2, 'it''s; quoted');
        /* block; comment */
        UPDATE {table} SET note = note || '!' WHERE id = 2;
        SELECT id, note FROM {table} ORDER BY id;
    """
    result, _ = run_sql(pg_cluster, {"command": script})
    assert result["statement_count"] == 4
    assert result["command_0"]["row_count"] == 0
    assert result["command_1"]["row_count"] == 2
    assert result["command_2"] == {"rows": [], "row_count": 1, "columns": []}
    assert result["rows"] == [{"id": 1, "note": "semi;colon"}, {"id": 2, "note": "it's; quoted!"}]
    assert result["row_count"] == 2


def test_dollar_quoted_function_bodies_are_not_split(pg_cluster: dict[str, Any]) -> None:
    fn = "f_" + uuid.uuid4().hex[:8]
    script = f"""
        CREATE FUNCTION {fn}(x int) RETURNS int LANGUAGE plpgsql AS $body$
        BEGIN
            IF x > 1 THEN RETURN x * 2; END IF;
            RETURN 0;
        END;
        $body$;
        DO $$ BEGIN PERFORM 1; END $$;
        SELECT {fn}(21) AS answer;
    """
    result, _ = run_sql(pg_cluster, {"query": script})
    assert result["statement_count"] == 3
    assert result["rows"] == [{"answer": 42}]


def test_values_are_converted_to_json_types(pg_cluster: dict[str, Any]) -> None:
    result, _ = run_sql(
        pg_cluster,
        {
            "sql": """SELECT 12.50::numeric AS price, 3::numeric AS whole,
                      '2024-05-01 12:30:00+02'::timestamptz AS at, '2024-05-01 08:00:00'::timestamp AS naive,
                      '2024-05-01'::date AS day, 'a8098c1a-f86e-11da-bd1a-00112444be1e'::uuid AS id,
                      '\\x0102ff'::bytea AS raw, '{"k": [1, 2]}'::jsonb AS doc, ARRAY[1, 2] AS arr, NULL AS nothing"""
        },
    )
    row = result["rows"][0]
    assert row["price"] == 12.5 and isinstance(row["price"], float)
    assert row["whole"] == 3 and isinstance(row["whole"], int)
    assert row["at"] == "2024-05-01T10:30:00+00:00"
    assert row["naive"] == "2024-05-01T08:00:00+00:00"
    assert row["day"] == "2024-05-01"
    assert row["id"] == "a8098c1a-f86e-11da-bd1a-00112444be1e"
    assert row["raw"] == base64.b64encode(b"\x01\x02\xff").decode()
    assert row["doc"] == {"k": [1, 2]}
    assert row["arr"] == [1, 2]
    assert row["nothing"] is None


def test_params_are_bound_by_the_driver_not_interpolated(pg_cluster: dict[str, Any]) -> None:
    hostile = "x'); DROP TABLE nothing; --"
    named, _ = run_sql(
        pg_cluster,
        {"command": "SELECT %(v)s::text AS v, %(n)s::int + 1 AS n", "params": {"v": hostile, "n": 41}},
    )
    assert named["rows"] == [{"v": hostile, "n": 42}]
    positional, _ = run_sql(pg_cluster, {"command": "SELECT %s::text AS a, %s::int AS b", "params": ["p", 7]})
    assert positional["rows"] == [{"a": "p", "b": 7}]
    # statements without placeholders keep a literal % as is
    mixed, _ = run_sql(
        pg_cluster, {"command": "SELECT '100%' AS pct; SELECT %(n)s::int AS n", "params": {"n": 5}}
    )
    assert mixed["command_0"]["rows"] == [{"pct": "100%"}]
    assert mixed["rows"] == [{"n": 5}]


def test_connection_url_v1_field_names_and_v1_auth_mapping(pg_cluster: dict[str, Any]) -> None:
    by_url, call = run_sql(
        pg_cluster, {"connection": pg_cluster["url"], "auth": None, "command": "SELECT current_user AS u"}
    )
    assert by_url["rows"] == [{"u": pg_cluster["user"]}]
    assert pg_cluster["password"] in call.secrets
    by_v1_fields, _ = run_sql(
        pg_cluster, {"auth": "pg_v1_fields", "command": "SELECT current_database() AS d"}
    )
    assert by_v1_fields["rows"] == [{"d": pg_cluster["database"]}]
    by_v1_mapping, _ = run_sql(
        pg_cluster, {"auth": {"type": "postgres", "credential": "pg_local"}, "command": "SELECT 1 AS ok"}
    )
    assert by_v1_mapping["rows"] == [{"ok": 1}]


def test_command_b64_and_script_file_beside_the_playbook(pg_cluster: dict[str, Any], tmp_path: Path) -> None:
    encoded = base64.b64encode(b"SELECT 'from b64' AS src").decode()
    result, _ = run_sql(pg_cluster, {"command_b64": encoded})
    assert result["rows"] == [{"src": "from b64"}]
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "q.sql").write_text("SELECT 1 AS a;\nSELECT 'from file' AS src;\n")
    result, _ = run_sql(
        pg_cluster, {"script": {"uri": "sql/q.sql", "source": {"type": "file"}}}, playbook_dir=tmp_path
    )
    assert result["statement_count"] == 2
    assert result["rows"] == [{"src": "from file"}]
    with pytest.raises(ToolError) as caught:
        run_sql(
            pg_cluster,
            {"script": {"uri": "sql/missing.sql", "source": {"type": "file"}}},
            playbook_dir=tmp_path,
        )
    assert caught.value.kind == "script"


def test_sql_error_names_the_statement_and_keeps_earlier_commits(pg_cluster: dict[str, Any]) -> None:
    table = table_name()
    error = sql_error(
        pg_cluster,
        {
            "command": f"CREATE TABLE {table} (id int); INSERT INTO {table} VALUES (1); SELECT * FROM no_such_table"
        },
    )
    assert error.kind == "sql"
    assert error.retryable is False
    assert "statement 2" in error.message and "no_such_table" in error.message
    assert error.details["statement_index"] == 2
    assert error.details["sqlstate"] == "42P01"
    # statements run in autocommit, like psql: the first two were committed
    result, _ = run_sql(pg_cluster, {"command": f"SELECT count(*) AS n FROM {table}"})
    assert result["rows"] == [{"n": 1}]


def test_failed_explicit_transaction_is_rolled_back_and_the_connection_reusable(
    pg_cluster: dict[str, Any],
) -> None:
    table = table_name()
    run_sql(pg_cluster, {"command": f"CREATE TABLE {table} (id int)"})

    async def main() -> Any:
        services = CredentialServices(await open_store(*credential_docs(pg_cluster)))
        call = make_call(services)
        with pytest.raises(ToolError):
            await run_postgres(
                {"auth": "pg_local", "command": f"BEGIN; INSERT INTO {table} VALUES (1); SELECT 1/0; COMMIT"},
                call,
            )
        # same pool, same loop: the connection must not be stuck in the aborted transaction
        return await run_postgres({"auth": "pg_local", "command": f"SELECT count(*) AS n FROM {table}"}, call)

    assert run_async(main)["rows"] == [{"n": 0}]


def test_password_echoed_by_a_database_error_is_redacted(pg_cluster: dict[str, Any]) -> None:
    password = pg_cluster["password"]
    error = sql_error(pg_cluster, {"command": f"SELECT '{password}'::int"})
    assert error.kind == "sql"
    assert password not in error.message
    assert password not in str(error.to_dict())
    assert "***" in error.message


def test_wrong_password_is_a_retryable_connection_error_without_the_password(
    pg_cluster: dict[str, Any],
) -> None:
    error = sql_error(pg_cluster, {"auth": "pg_wrong_password", "command": "SELECT 1"})
    assert error.kind == "connection"
    assert error.retryable is True
    assert "password authentication failed" in error.message
    assert "not-the-password-123" not in error.message


def test_unreachable_server_is_a_connection_error_with_password_blanked(pg_cluster: dict[str, Any]) -> None:
    url = f"postgresql://someone:hunter2-secret@127.0.0.1:{free_port()}/db?connect_timeout=3"
    error = sql_error(pg_cluster, {"connection": url, "auth": None, "command": "SELECT 1"})
    assert error.kind == "connection"
    assert error.retryable is True
    assert "hunter2-secret" not in error.message


def test_missing_sql_or_connection_are_config_errors(pg_cluster: dict[str, Any]) -> None:
    assert sql_error(pg_cluster, {}).kind == "config"
    assert sql_error(pg_cluster, {"command": "  -- only a comment\n"}).kind == "config"
    assert sql_error(pg_cluster, {"auth": "", "command": "SELECT 1"}).kind == "config"
    assert sql_error(pg_cluster, {"auth": "no_such_credential", "command": "SELECT 1"}).kind == "credential"


def test_concurrent_calls_share_the_pool(pg_cluster: dict[str, Any]) -> None:
    import asyncio

    async def main() -> list[Any]:
        services = CredentialServices(await open_store(*credential_docs(pg_cluster)))
        calls = [
            run_postgres(
                {"auth": "pg_local", "command": "SELECT %s::int AS i, pg_sleep(0.05)", "params": [i]},
                make_call(services),
            )
            for i in range(30)
        ]
        return await asyncio.gather(*calls)

    results = run_async(main)
    assert sorted(r["rows"][0]["i"] for r in results) == list(range(30))


def test_numbered_placeholders_with_a_params_list_are_postgres_own_parameters(pg_cluster: dict[str, Any]) -> None:
    # NoETL playbooks bind caller data as one base64 JSON parameter: $1 with `params: [...]`.
    payload = base64.b64encode(json.dumps({"guests": 2, "note": "it's $1"}).encode()).decode()
    sql = ("SELECT (j->>'guests')::int + $2::int AS guests, j->>'note' AS note, '$1' AS literal "
           "FROM (SELECT convert_from(decode($1::text,'base64'),'UTF8')::jsonb AS j) p")
    result, _ = run_sql(pg_cluster, {"command": sql, "params": [payload, 1]})
    assert result["rows"] == [{"guests": 3, "note": "it's $1", "literal": "$1"}]
    # a function body's $1 is its argument, not a parameter of the statement that creates it
    body = ("CREATE OR REPLACE FUNCTION pg_temp.twice(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 * 2 $$; "
            "SELECT pg_temp.twice($1::int) AS n")
    created, _ = run_sql(pg_cluster, {"command": body, "params": [21]})
    assert created["rows"] == [{"n": 42}]
