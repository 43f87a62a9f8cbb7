"""The SQL endpoint on a real PostgreSQL: one statement, as the reader role, on a fresh connection.
Each attack that once deleted the catalog, read server files or broke the pool is refused, and the
catalog and the server's pool are intact afterwards."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psycopg
import pytest
from test_distributed_cluster import create_database

from noetl.limits import MAX_QUERY_BYTES, MAX_QUERY_ROWS
from noetl.server.app import create_app
from noetl.server.state import ServerConfig
from noetl.store.postgres.sqlreader import ensure_reader, reader_role_name

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: sql, path: tests/sql}
workflow:
  - step: start
    tool: {kind: noop}
"""
SQL = "/api/postgres/execute"


@pytest.fixture
def url(pg_cluster: dict[str, Any]) -> str:
    return create_database(pg_cluster)


def as_superuser(pg: dict[str, Any], url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(host=pg["socket_dir"], port=pg["port"], user=pg["superuser"], dbname=url.rsplit("/", 1)[1],
                           autocommit=True)


def served(pg: dict[str, Any], url: str, scenario: Callable[[httpx.AsyncClient], Awaitable[None]],
           *, reader: bool = True) -> None:
    async def main() -> None:
        app = create_app(ServerConfig(database_url=url, sql_api_enabled=True, reap_interval=0.05))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://noetl.test") as client:
            assert (await client.post("/api/catalog/register", json={"content": PLAYBOOK})).status_code == 200
            if reader:  # what `noetl db init` run by a role with CREATEROLE does
                async with await psycopg.AsyncConnection.connect(host=pg["socket_dir"], port=pg["port"],
                                                                 user=pg["superuser"],
                                                                 dbname=url.rsplit("/", 1)[1]) as conn:
                    await ensure_reader(conn)
            await scenario(client)

    asyncio.run(main())
    with as_superuser(pg, url) as conn:
        assert conn.execute("SELECT count(*) FROM noetl.catalog").fetchone() == (1,)


ESCAPES = [
    ("SET TRANSACTION READ WRITE; DELETE FROM noetl.catalog", 400),
    ("COMMIT; DELETE FROM noetl.catalog", 400),
    ("ROLLBACK; DELETE FROM noetl.catalog", 400),
    ("END; DELETE FROM noetl.catalog", 400),
    ("SELECT 1; SELECT 2", 400),
    ("DELETE FROM noetl.catalog", 403),
    ("WITH gone AS (DELETE FROM noetl.catalog RETURNING 1) SELECT * FROM gone", 403),
    ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/noetl-pwned'", 403),
    ("SELECT pg_read_file('/etc/hostname')", 403),
    ("SELECT * FROM noetl.credential", 403),
    ("SELECT * FROM noetl.sql_reader", 403),
    ("SELECT set_config('role', 'noetl_test', false)", 403),
    ("SET search_path TO nowhere", 403),
    ("LISTEN noetl_anything", 403),
    ("SELECT * FROM noetl.catalog FOR UPDATE", 403),
    ("EXPLAIN ANALYZE DELETE FROM noetl.catalog", 403),
    ("SELECT lo_import('/etc/hostname')", 403),
    ("CREATE EXTENSION dblink", 403),
    ("SET ROLE noetl_test", 403),
    ("/* /* nested */ SELECT */ DELETE FROM noetl.catalog", 403),
]


def test_escapes_from_the_read_only_rules_are_refused(pg_cluster: dict[str, Any], url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        for query, status in ESCAPES:
            response = await client.post(SQL, json={"query": query})
            assert response.status_code == status, (query, response.text)
            assert "\n" not in response.json()["error"]
        who = await client.post(SQL, json={"query": "SELECT current_user, session_user"})
        role = reader_role_name(url.rsplit("/", 1)[1])
        assert who.json()["rows"] == [[role, role]]
        rows = await client.post(SQL, json={"query": "SELECT path FROM noetl.catalog WHERE path = %s",
                                              "params": ["tests/sql"]})
        assert rows.json()["rows"] == [["tests/sql"]]
        commented = await client.post(SQL, json={"query": "-- the catalog\n/* one path */ SELECT path FROM noetl.catalog"})
        assert commented.json()["rows"] == [["tests/sql"]], commented.text

    served(pg_cluster, url, scenario)


def test_session_state_dies_with_the_request(pg_cluster: dict[str, Any], url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        for query in ("SELECT pg_advisory_lock(4242)", "SELECT set_config('search_path', 'nowhere', false)",
                      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"):
            response = await client.post(SQL, json={"query": query})
            assert response.status_code in (200, 403), (query, response.text)
        for _ in range(12):  # more than the pool holds: every pooled connection is still healthy
            started = await client.post("/api/execute", json={"path": "tests/sql"})
            assert started.status_code == 200, started.text
        with as_superuser(pg_cluster, url) as conn:
            assert conn.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)

    served(pg_cluster, url, scenario)


def test_connection_string_and_write_follow_the_same_rules(pg_cluster: dict[str, Any], url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        other = {"connection_string": url}
        ok = await client.post(SQL, json={"query": "SELECT current_user", **other})
        assert ok.status_code == 200 and ok.json()["rows"] == [[pg_cluster["user"]]]
        for query in ("DELETE FROM noetl.catalog", "COMMIT; DELETE FROM noetl.catalog"):
            assert (await client.post(SQL, json={"query": query, **other})).status_code in (400, 403)
        bad = await client.post(SQL, json={"query": "SELECT 1", "connection_string": "mysql://x"})
        assert bad.status_code == 400
        write = await client.post(SQL, json={"query": "DELETE FROM noetl.catalog", "write": True})
        assert write.status_code == 403 and "NOETL_SQL_API_WRITE" in write.json()["error"]
        missing = await client.post(SQL, json={"query": "SELECT 1", "credential": "nope"})
        assert missing.status_code == 404

    served(pg_cluster, url, scenario)


def test_a_connection_string_logs_in_with_what_it_says_not_with_the_servers_credentials(
        pg_cluster: dict[str, Any], url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # What libpq takes from the server's own host when a connection string leaves it out.
    monkeypatch.setenv("PGPASSWORD", pg_cluster["password"])
    monkeypatch.setenv("PGUSER", pg_cluster["superuser"])
    dbname = url.rsplit("/", 1)[1]
    tcp = f"postgresql://{pg_cluster['user']}@127.0.0.1:{pg_cluster['port']}/{dbname}"
    refused = [
        f"postgresql://127.0.0.1:{pg_cluster['port']}/{dbname}",  # no user: PGUSER
        f"postgresql:///{dbname}?host={pg_cluster['socket_dir']}&port={pg_cluster['port']}"
        f"&user={pg_cluster['superuser']}",  # a unix socket: the server's OS account
        f"{tcp}?passfile=/etc/hostname",
        f"{tcp}?sslkey=/etc/hostname",
        f"{tcp}?service=noetl",
        "postgresql://%zz",
    ]

    async def scenario(client: httpx.AsyncClient) -> None:
        without_password = await client.post(SQL, json={"query": "SELECT current_user", "connection_string": tcp})
        assert without_password.status_code == 400, without_password.text  # not the server's PGPASSWORD
        assert "no password supplied" in without_password.json()["error"]
        for connection_string in refused:
            response = await client.post(SQL, json={"query": "SELECT current_user",
                                                    "connection_string": connection_string})
            assert response.status_code == 400, (connection_string, response.text)
            assert "\n" not in response.json()["error"]
        with_password = tcp.replace("@", f":{pg_cluster['password']}@")
        ok = await client.post(SQL, json={"query": "SELECT current_user", "connection_string": with_password})
        assert ok.status_code == 200 and ok.json()["rows"] == [[pg_cluster["user"]]], ok.text
        fields = {"host": "127.0.0.1", "port": pg_cluster["port"], "user": pg_cluster["user"], "database": dbname}
        for name, data in (("pg_nopass", fields), ("pg_own", {**fields, "password": pg_cluster["password"]})):
            stored = await client.post("/api/credentials", json={"name": name, "type": "postgres", "data": data})
            assert stored.status_code == 200, stored.text
        nopass = await client.post(SQL, json={"query": "SELECT current_user", "credential": "pg_nopass"})
        assert nopass.status_code == 400 and "no password supplied" in nopass.json()["error"], nopass.text
        wrong = await client.post(SQL, json={"query": "SELECT 1", "connection_string": tcp.replace("@", ":wrong@")})
        assert wrong.status_code == 400 and "password authentication failed" in wrong.json()["error"], wrong.text
        own = await client.post(SQL, json={"query": "SELECT current_user", "credential": "pg_own"})
        assert own.status_code == 200 and own.json()["rows"] == [[pg_cluster["user"]]], own.text

    served(pg_cluster, url, scenario)


def test_an_answer_is_bounded_and_says_it_was_cut(pg_cluster: dict[str, Any], url: str) -> None:
    """`SELECT generate_series(1, 1e9)` took the server's memory: the whole result was fetched
    before the first row was answered."""
    async def scenario(client: httpx.AsyncClient) -> None:
        many = (await client.post(SQL, json={"query": "SELECT generate_series(1, 1000000000) AS n"})).json()
        assert many["truncated"] is True and many["rowcount"] == MAX_QUERY_ROWS == len(many["rows"])
        assert many["rows"][:2] == [[1], [2]]
        wide = (await client.post(SQL, json={"query": "SELECT repeat('x', 1000000) FROM generate_series(1, 100)"})).json()
        assert wide["truncated"] is True and 0 < len(wide["rows"]) * 1_000_000 <= MAX_QUERY_BYTES
        whole = (await client.post(SQL, json={"query": "SELECT generate_series(1, 3) AS n"})).json()
        assert whole == {"columns": ["n"], "rows": [[1], [2], [3]], "rowcount": 3}

    served(pg_cluster, url, scenario)


def test_a_statement_past_the_time_limit_is_the_callers_error_not_a_503(
        pg_cluster: dict[str, Any], url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 503 tells a client to retry the same endless statement; it is a 400 naming the limit."""
    monkeypatch.setattr("noetl.server.sqlapi.STATEMENT_TIMEOUT_MS", 300)

    async def scenario(client: httpx.AsyncClient) -> None:
        endless = await client.post(SQL, json={"query": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
                                                        "FROM r) SELECT count(*) FROM r"})
        assert endless.status_code == 400, endless.text
        assert "stopped after 0.3 s" in endless.text and "canceling" not in endless.text
        assert (await client.post(SQL, json={"query": "SELECT 1 AS one"})).json()["rows"] == [[1]]

    served(pg_cluster, url, scenario)


def test_without_a_reader_role_an_unprivileged_server_role_reads_only(pg_cluster: dict[str, Any], url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        who = await client.post(SQL, json={"query": "SELECT current_user"})
        assert who.json()["rows"] == [[pg_cluster["user"]]]
        for query, _status in ESCAPES[:8]:
            assert (await client.post(SQL, json={"query": query})).status_code in (400, 403), query

    served(pg_cluster, url, scenario, reader=False)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def with_peak_growth(work: Awaitable[Any]) -> tuple[Any, int]:
    """``work``'s answer, and how far this process's resident memory rose above its start meanwhile."""
    before, peak, done = _resident_bytes(), [0], asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _resident_bytes())
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        answer = await work
    finally:
        done.set()
        await watcher
    return answer, peak[0] - before


def test_one_huge_row_never_reaches_the_servers_memory(pg_cluster: dict[str, Any], url: str) -> None:
    """`SELECT repeat('x', 200000000)` was received whole (libpq holds a row whole, then Python
    copied it twice more) before the 16 MiB bound cut the answer: PostgreSQL now measures each row
    and sends none that would not fit, so the server's memory grows by far less than the row."""
    async def scenario(client: httpx.AsyncClient) -> None:
        (huge, health), grown = await with_peak_growth(asyncio.gather(  # other requests are answered meanwhile
            client.post(SQL, json={"query": "SELECT 1 AS n, repeat('x', 200000000) AS big"}),
            client.get("/api/health")))
        assert huge.status_code == 200, huge.text[:300]
        assert huge.json() == {"columns": ["n", "big"], "rows": [], "rowcount": 0, "truncated": True}
        assert health.status_code == 200
        assert grown < 100 * 1024 * 1024, f"grew by {grown >> 20} MiB"
        # Rows that fit come before the one that does not, with their types and names as before.
        mixed = (await client.post(SQL, json={"query": "SELECT n, CASE WHEN n = 3 THEN repeat('x', 20000000) "
                                                       "ELSE 'small' END AS t, n = 1 AS first FROM "
                                                       "generate_series(1, 5) AS n"})).json()
        assert mixed == {"columns": ["n", "t", "first"], "rows": [[1, "small", True], [2, "small", False]],
                         "rowcount": 2, "truncated": True}
        same = (await client.post(SQL, json={"query": "SELECT 1 AS a, 2 AS a -- the last line is a comment"})).json()
        assert same == {"columns": ["a", "a"], "rows": [[1, 2]], "rowcount": 1}

    served(pg_cluster, url, scenario)


def test_a_byte_order_mark_before_the_statement_is_not_part_of_it(pg_cluster: dict[str, Any], url: str) -> None:
    """A file saved with a BOM starts with an invisible U+FEFF: the statement runs, and an error
    never echoes an invisible character."""
    async def scenario(client: httpx.AsyncClient) -> None:
        bom = await client.post(SQL, json={"query": "\ufeffSELECT 1 AS one"})
        assert bom.status_code == 200 and bom.json()["rows"] == [[1]], bom.text
        hidden = await client.post(SQL, json={"query": "\u200bDELETE FROM noetl.catalog"})
        assert hidden.status_code == 403 and "\u200b" not in hidden.json()["error"], hidden.text
        assert "U+200B" in hidden.json()["error"], hidden.text

    served(pg_cluster, url, scenario)


def test_a_plan_that_folds_a_huge_constant_never_reaches_the_servers_memory(
        pg_cluster: dict[str, Any], url: str) -> None:
    """PostgreSQL folds `repeat('x', 300000000)` into a constant while planning, and EXPLAIN prints
    it: a 60-byte statement made a 300 MB line that the server received whole (and copied), 1.5 GB
    at its peak (here 200 MB: less work for PostgreSQL on a busy machine, still far over
    the bound). The plan is measured in PostgreSQL now, as a reading statement's rows are."""
    async def scenario(client: httpx.AsyncClient) -> None:
        huge, grown = await with_peak_growth(
            client.post(SQL, json={"query": "EXPLAIN VERBOSE SELECT repeat('x', 200000000) AS big"}))
        assert huge.status_code == 200, huge.text[:300]
        assert huge.json()["truncated"] is True, huge.text[:300]
        assert sum(len(line[0]) for line in huge.json()["rows"]) <= MAX_QUERY_BYTES
        assert grown < 100 * 1024 * 1024, f"grew by {grown >> 20} MiB"
        # A plan that fits is answered as before: its lines, its format's values, its parameters.
        text = (await client.post(SQL, json={"query": "EXPLAIN SELECT %s::int AS n", "params": [7]})).json()
        assert text["columns"] == ["QUERY PLAN"] and text["rows"][0][0].startswith("Result"), text
        assert "truncated" not in text
        plan = (await client.post(SQL, json={"query": "EXPLAIN (FORMAT JSON) SELECT 1"})).json()
        assert plan["rows"][0][0][0]["Plan"]["Node Type"] == "Result", plan
        analyzed = (await client.post(SQL, json={"query": "EXPLAIN ANALYZE SELECT 1"})).json()
        assert any(line[0].startswith("Execution Time") for line in analyzed["rows"]), analyzed
        refused = await client.post(SQL, json={"query": "EXPLAIN ANALYZE DELETE FROM noetl.catalog"})
        assert refused.status_code == 403 and "\n" not in refused.json()["error"], refused.text
        wrong = await client.post(SQL, json={"query": "EXPLAIN SELECT nope FROM nowhere"})
        assert wrong.status_code == 400, wrong.text
        assert wrong.json()["error"] == 'SQL error: relation "nowhere" does not exist', wrong.text

    served(pg_cluster, url, scenario)
