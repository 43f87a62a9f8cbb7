"""The duckdb tool: result shape, per-execution database files, params, errors, Postgres attach."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.tools import CredentialServices, make_call, open_store, run_async  # noqa: E402

from noetl.errors import ToolError  # noqa: E402
from noetl.tools import duckdb as duckdb_tool  # noqa: E402
from noetl.tools.duckdb import run_duckdb  # noqa: E402
from noetl.tools.postgres import run_postgres  # noqa: E402


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NOETL_HOME", str(home))
    monkeypatch.delenv("NOETL_SECRET_KEY", raising=False)
    # Tests never reach for the internet: only an installed or packaged extension may be used.
    monkeypatch.setattr(duckdb_tool, "ALLOW_EXTENSION_DOWNLOAD", False)
    return home


def run_sql(
    config: dict[str, Any],
    *,
    execution_id: str = "exec-1",
    services: Any = None,
    playbook_dir: Path | None = None,
) -> Any:
    async def main() -> Any:
        return await run_duckdb(
            config, make_call(services, execution_id=execution_id, playbook_dir=playbook_dir)
        )

    return run_async(main)


def sql_error(config: dict[str, Any], **kwargs: Any) -> ToolError:
    with pytest.raises(ToolError) as caught:
        run_sql(config, **kwargs)
    return caught.value


def postgres_extension_available() -> bool:
    if duckdb_tool.packaged_postgres_extension() is not None:
        return True
    connection = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        connection.execute("LOAD postgres")
        return True
    except duckdb.Error:
        return False
    finally:
        connection.close()


POSTGRES_EXTENSION_AVAILABLE = postgres_extension_available()


needs_postgres_extension = pytest.mark.skipif(
    not POSTGRES_EXTENSION_AVAILABLE,
    reason=f"no offline DuckDB postgres extension for duckdb {duckdb.__version__} "
    "(pip install duckdb==1.5.5 duckdb-extension-postgres==1.5.5)",
)


def test_select_shape_and_value_conversions() -> None:
    result = run_sql(
        {
            "database": ":memory:",
            "query": """SELECT 1 AS n, 2.50::DECIMAL(5,2) AS price, DATE '2024-05-01' AS day,
                        TIMESTAMP '2024-05-01 08:00:00' AS at, TIMESTAMPTZ '2024-05-01 10:00:00+02' AS at_tz,
                        'a8098c1a-f86e-11da-bd1a-00112444be1e'::UUID AS id, '\\x01\\x02'::BLOB AS raw,
                        '{"k": [1, 2]}'::JSON AS doc, [1, 2, 3] AS arr, {'a': 1, 'b': 'x'} AS rec""",
        }
    )
    assert result["status"] == "ok"
    assert result["statement_count"] == 1
    assert result["columns"] == ["n", "price", "day", "at", "at_tz", "id", "raw", "doc", "arr", "rec"]
    assert result["rows"] == [
        {
            "n": 1,
            "price": 2.5,
            "day": "2024-05-01",
            "at": "2024-05-01T08:00:00+00:00",
            "at_tz": "2024-05-01T08:00:00+00:00",
            "id": "a8098c1a-f86e-11da-bd1a-00112444be1e",
            "raw": "AQI=",
            "doc": {"k": [1, 2]},
            "arr": [1, 2, 3],
            "rec": {"a": 1, "b": "x"},
        }
    ]
    assert result["command_0"]["rows"] == result["rows"]


def test_statements_report_dml_counts_and_mirror_the_last(tmp_path: Path) -> None:
    result = run_sql(
        {
            "database": str(tmp_path / "x.duckdb"),
            "command": """
                CREATE TABLE t (id INTEGER PRIMARY KEY, note VARCHAR);
                INSERT INTO t VALUES (1, 'a;b'), (2, 'it''s');
                UPDATE t SET note = note || '!' WHERE id = 2;
                SELECT * FROM t ORDER BY id;
            """,
        }
    )
    assert result["statement_count"] == 4
    assert result["command_0"] == {"rows": [], "row_count": 0, "columns": []}
    assert result["command_1"]["row_count"] == 2
    assert result["command_2"]["row_count"] == 1
    assert result["rows"] == [{"id": 1, "note": "a;b"}, {"id": 2, "note": "it's!"}]
    assert (tmp_path / "x.duckdb").is_file()


def test_default_database_is_one_file_per_execution(_home: Path) -> None:
    run_sql({"command": "CREATE TABLE shared AS SELECT 42 AS answer"}, execution_id="exec-a")
    same = run_sql({"command": "SELECT answer FROM shared"}, execution_id="exec-a")
    assert same["rows"] == [{"answer": 42}]
    assert (_home / "data" / "duckdb" / "exec-a.duckdb").is_file()
    other = sql_error({"command": "SELECT answer FROM shared"}, execution_id="exec-b")
    assert other.kind == "sql"


def test_memory_databases_are_not_shared() -> None:
    run_sql({"database": ":memory:", "command": "CREATE TABLE m (a INT)"})
    assert sql_error({"database": ":memory:", "command": "SELECT * FROM m"}).kind == "sql"


def test_positional_and_named_params() -> None:
    positional = run_sql(
        {"database": ":memory:", "command": "SELECT ? AS a, ? + 1 AS b", "params": ["x", 41]}
    )
    assert positional["rows"] == [{"a": "x", "b": 42}]
    named = run_sql(
        {
            "database": ":memory:",
            "command": "SELECT 1 AS plain; SELECT $city AS city",
            "params": {"city": "Oslo"},
        }
    )
    assert named["command_0"]["rows"] == [{"plain": 1}]
    assert named["rows"] == [{"city": "Oslo"}]


def test_a_params_mapping_is_shared_by_statements_using_different_names() -> None:
    result = run_sql(
        {
            "database": ":memory:",
            "command": "CREATE TABLE t (a INT, b VARCHAR); INSERT INTO t VALUES ($a, $b); "
            "SELECT * FROM t WHERE a = $a",
            "params": {"a": 1, "b": "x"},
        }
    )
    assert result["command_1"]["row_count"] == 1
    assert result["rows"] == [{"a": 1, "b": "x"}]


def test_sql_error_names_the_statement() -> None:
    error = sql_error({"database": ":memory:", "command": "SELECT 1; SELECT * FROM missing_table"})
    assert error.kind == "sql"
    assert error.retryable is False
    assert "statement 1 of 2" in error.message and "missing_table" in error.message
    assert error.details["statement_index"] == 1


def test_a_lone_failing_statement_is_not_numbered() -> None:
    error = sql_error({"database": ":memory:", "command": "SELECT * FROM missing_table"})
    assert error.message.startswith("SQL error: ") and "missing_table" in error.message
    assert "statement 0" not in error.message


def test_script_file_and_missing_sql(tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text("SELECT 'from file' AS src;")
    result = run_sql(
        {"database": ":memory:", "script": {"uri": "q.sql", "source": {"type": "file"}}},
        playbook_dir=tmp_path,
    )
    assert result["rows"] == [{"src": "from file"}]
    assert sql_error({"database": ":memory:"}).kind == "config"


def test_parallel_calls_on_one_execution_file_do_not_conflict() -> None:
    run_sql({"command": "CREATE TABLE hits (i INTEGER)"}, execution_id="exec-par")

    async def main() -> Any:
        calls = [
            run_duckdb(
                {"command": "INSERT INTO hits VALUES (?)", "params": [i]}, make_call(execution_id="exec-par")
            )
            for i in range(20)
        ]
        await asyncio.gather(*calls)
        return await run_duckdb(
            {"command": "SELECT count(*) AS n FROM hits"}, make_call(execution_id="exec-par")
        )

    assert run_async(main)["rows"] == [{"n": 20}]


# --- PostgreSQL through the postgres extension ----------------------------------------------


def pg_credentials(pg: dict[str, Any]) -> list[dict[str, Any]]:
    data = {k: pg[k] for k in ("host", "port", "user", "password", "database")}
    return [
        {"name": "pg_local", "type": "postgres", "data": data},
        {"name": "pg_bad", "type": "postgres", "data": {**data, "password": "definitely-wrong-pw"}},
    ]


def run_with_pg(pg: dict[str, Any], config: dict[str, Any]) -> Any:
    async def main() -> Any:
        services = CredentialServices(await open_store(*pg_credentials(pg)))
        return await run_duckdb(config, make_call(services))

    return run_async(main)


@needs_postgres_extension
def test_attach_postgres_from_credentials_reads_and_writes(pg_cluster: dict[str, Any]) -> None:
    result = run_with_pg(
        pg_cluster,
        {
            "database": ":memory:",
            "credentials": {"pg": {"key": "pg_local"}},
            "command": """
                CREATE TABLE IF NOT EXISTS pg.public.duck_written (id INTEGER, name VARCHAR);
                INSERT INTO pg.public.duck_written VALUES (1, 'one'), (2, 'two');
                SELECT count(*) AS n FROM pg.public.duck_written;
            """,
        },
    )
    assert result["rows"] == [{"n": 2}]

    async def read_back() -> Any:
        services = CredentialServices(await open_store(*pg_credentials(pg_cluster)))
        return await run_postgres(
            {"auth": "pg_local", "command": "SELECT name FROM duck_written ORDER BY id"}, make_call(services)
        )

    assert run_async(read_back)["rows"] == [{"name": "one"}, {"name": "two"}]
    by_auth = run_with_pg(
        pg_cluster,
        {
            "database": ":memory:",
            "auth": "pg_local",
            "command": "SELECT 1 AS ok FROM pg_local.public.duck_written LIMIT 1",
        },
    )
    assert by_auth["rows"] == [{"ok": 1}]


@needs_postgres_extension
def test_unified_auth_aliases_attach_or_create_the_secret_the_sql_attaches(pg_cluster: dict[str, Any]) -> None:
    """Unified-auth playbooks map aliases to credentials: an alias with `secret_name` becomes that
    DuckDB secret for the SQL's own ATTACH, the others are attached under their alias."""
    result = run_with_pg(pg_cluster, {
        "database": ":memory:",
        "auth": {"pg_db": {"type": "postgres", "key": "pg_local", "secret_name": "pg_main"},
                 "other": {"type": "postgres", "key": "pg_local"}},
        "command": """
            ATTACH '' AS pg_db (TYPE postgres, SECRET pg_main);
            SELECT (SELECT count(*) FROM pg_db.information_schema.tables WHERE table_name = 'pg_class')
                 + (SELECT count(*) FROM other.information_schema.tables WHERE table_name = 'pg_class') AS n;
        """,
    })
    assert result["rows"] == [{"n": 2}]
    with pytest.raises(ToolError) as caught:
        run_with_pg(pg_cluster, {"database": ":memory:", "command": "SELECT 1", "auth": {
            "pg_db": {"type": "postgres", "key": "pg_local"}, "gcs": {"type": "hmac", "key": "gcs_hmac"}}})
    assert caught.value.kind == "config" and "auth.gcs" in caught.value.message


@needs_postgres_extension
def test_a_credentials_alias_is_also_a_secret_for_the_sqls_own_attach(pg_cluster: dict[str, Any]) -> None:
    """v1 DuckDB SQL attaches its aliases itself with the secret of the same name
    (`ATTACH '' AS pg_db (TYPE postgres, SECRET pg_db)`); NoETL leaves that alias to it."""
    result = run_with_pg(pg_cluster, {
        "database": ":memory:",
        "credentials": {"pg_db": {"key": "pg_local"}},
        "command": """
            INSTALL postgres; LOAD postgres;
            ATTACH '' AS pg_db (TYPE postgres, SECRET pg_db);
            SELECT count(*) AS n FROM pg_db.information_schema.tables WHERE table_name = 'pg_class';
        """,
    })
    assert result["rows"] == [{"n": 1}]


@needs_postgres_extension
def test_attach_failure_is_a_connection_error_without_the_password(pg_cluster: dict[str, Any]) -> None:
    with pytest.raises(ToolError) as caught:
        run_with_pg(pg_cluster, {"database": ":memory:", "auth": "pg_bad", "command": "SELECT 1"})
    assert caught.value.kind == "connection"
    assert caught.value.retryable is True
    assert "definitely-wrong-pw" not in caught.value.message


@pytest.mark.skipif(POSTGRES_EXTENSION_AVAILABLE, reason="the postgres extension is available here")
def test_missing_postgres_extension_is_a_clear_config_error(pg_cluster: dict[str, Any]) -> None:
    with pytest.raises(ToolError) as caught:
        run_with_pg(pg_cluster, {"database": ":memory:", "auth": "pg_local", "command": "SELECT 1"})
    assert caught.value.kind == "config"
    assert "postgres extension is not available" in caught.value.message
    assert "duckdb-extension-postgres" in caught.value.message
    assert pg_cluster["password"] not in caught.value.message


def test_non_postgres_credentials_cannot_be_attached(pg_cluster: dict[str, Any]) -> None:
    async def main() -> Any:
        services = CredentialServices(
            await open_store({"name": "tok", "type": "bearer", "data": {"token": "abcd1234"}})
        )
        return await run_duckdb(
            {"database": ":memory:", "auth": "tok", "command": "SELECT 1"}, make_call(services)
        )

    with pytest.raises(ToolError) as caught:
        run_async(main)
    assert caught.value.kind == "config"
