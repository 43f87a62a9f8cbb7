"""The API's front door on a real PostgreSQL: token roles (401/403), the body limit (413) and
strict JSON (NaN, lone surrogates, NUL, deep nesting -> 400), and that nothing stored is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from test_distributed_cluster import create_database

from noetl.server.app import create_app
from noetl.server.state import ServerConfig
from noetl.server.tokens import TokenRegistry

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: sec, path: tests/sec}
workflow:
  - step: start
    tool: {kind: noop}
"""
TOKENS = {"tok-read": "read", "tok-exec": "execute", "tok-admin": "admin"}


@pytest.fixture
def url(pg_cluster: dict[str, Any]) -> str:
    return create_database(pg_cluster)


Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


def served(url: str, scenario: Scenario, **config: Any) -> None:
    async def main() -> None:
        app = create_app(ServerConfig(database_url=url, reap_interval=0.05,
                                      tokens=TokenRegistry.build(tokens=TOKENS), **config))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://noetl.test") as client:
            response = await client.post("/api/catalog/register", json={"content": PLAYBOOK}, headers=auth("tok-admin"))
            assert response.status_code == 200, response.text
            await scenario(client)

    asyncio.run(main())


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_each_role_reaches_its_routes_and_no_further(url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        run = {"path": "tests/sec"}
        assert (await client.get("/api/executions", headers=auth("tok-read"))).status_code == 200
        assert (await client.post("/api/catalog/list", headers=auth("tok-read"))).status_code == 200
        denied = await client.post("/api/execute", json=run, headers=auth("tok-read"))
        assert denied.status_code == 403 and "needs 'execute'" in denied.json()["error"]
        started = await client.post("/api/execute", json=run, headers=auth("tok-exec"))
        assert started.status_code == 200, started.text
        execution_id = started.json()["execution_id"]
        assert (await client.get(f"/api/executions/{execution_id}/status", headers=auth("tok-read"))).status_code == 200
        assert (await client.post("/api/catalog/register", json={"content": PLAYBOOK},
                                  headers=auth("tok-exec"))).status_code == 403
        assert (await client.get("/api/credentials", headers=auth("tok-exec"))).status_code == 403
        assert (await client.post("/api/workers/lease", json={"worker": "w", "limit": 1},
                                  headers=auth("tok-exec"))).status_code == 403
        assert (await client.get("/api/credentials", headers=auth("tok-admin"))).status_code == 200
        for headers in ({}, auth("wrong"), {"Authorization": "tok-admin"}, auth("tok-admi")):
            response = await client.get("/api/executions", headers=headers)
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/health")).status_code == 200

    served(url, scenario)


def test_schedules_are_managed_by_admin_and_run_now_by_execute(url: str) -> None:
    """SPEC section 20: schedules belong to `admin`; "run now" only starts an execution, as `execute` may."""
    async def scenario(client: httpx.AsyncClient) -> None:
        schedule = {"path": "tests/sec", "cron": "0 3 * * *", "name": "nightly"}
        refused = await client.post("/api/schedules", json=schedule, headers=auth("tok-exec"))
        assert refused.status_code == 403 and "needs 'admin'" in refused.json()["error"]
        assert (await client.post("/api/schedules", json=schedule, headers=auth("tok-admin"))).status_code == 200
        for action in ("pause", "resume"):
            response = await client.post(f"/api/schedules/nightly/{action}", headers=auth("tok-exec"))
            assert response.status_code == 403, (action, response.text)
        backfill = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
        assert (await client.post("/api/schedules/nightly/backfill", json=backfill,
                                  headers=auth("tok-exec"))).status_code == 403
        assert (await client.delete("/api/schedules/nightly", headers=auth("tok-exec"))).status_code == 403
        listed = await client.get("/api/schedules", headers=auth("tok-read"))
        assert [s["name"] for s in listed.json()] == ["nightly"]
        assert (await client.post("/api/schedules/nightly/trigger", headers=auth("tok-read"))).status_code == 403
        triggered = await client.post("/api/schedules/nightly/trigger", headers=auth("tok-exec"))
        assert triggered.status_code == 200 and triggered.json()["status"] == "started", triggered.text
        assert (await client.post("/api/schedules/nightly/pause", headers=auth("tok-admin"))).status_code == 200
        assert (await client.delete("/api/schedules/nightly", headers=auth("tok-admin"))).status_code == 200

    served(url, scenario)


def test_anonymous_requests_are_refused_before_the_body_is_read(url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        for body in (b"{not json", b"x" * 50_000):
            response = await client.post("/api/execute", content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 401, response.text

    served(url, scenario, max_body_bytes=1000)


def test_bodies_over_the_limit_are_413_with_or_without_a_length(url: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    async def scenario(client: httpx.AsyncClient) -> None:
        big = {"path": "tests/sec", "payload": {"blob": "x" * 2000}}
        response = await client.post("/api/execute", json=big, headers=auth("tok-exec"))
        assert response.status_code == 413 and "1000 bytes" in response.json()["error"]
        streamed = await client.post("/api/execute", content=chunks(),
                                     headers={**auth("tok-exec"), "Content-Type": "application/json"})
        assert streamed.status_code == 413
        small = await client.post("/api/execute", json={"path": "tests/sec"}, headers=auth("tok-exec"))
        assert small.status_code == 200

    served(url, scenario, max_body_bytes=1000)


@pytest.mark.parametrize(("body", "says"), [
    (b'{"path": "tests/sec", "payload": {"x": NaN}}', "not a JSON number"),
    (b'{"path": "tests/sec", "payload": {"x": 1e999}}', "NaN and Infinity"),
    (b'{"path": "tests/sec", "payload": {"x": "\\ud800"}}', "lone UTF-16 surrogate"),
    (b'{"path": "tests/sec\\udfff"}', "lone UTF-16 surrogate"),
    (b'{"path": "tests/sec", "payload": {"x": "a\\u0000b"}}', "NUL"),
    (b'{"path": "tests/sec", "payload": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_001, "levels deep"),
    (b'{"path": "tests/sec", "payload": ' + b"[" * 150 + b"]" * 150 + b"}", "levels deep"),
])
def test_json_that_cannot_be_stored_is_a_400_and_changes_nothing(url: str, body: bytes, says: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        headers = {**auth("tok-exec"), "Content-Type": "application/json"}
        response = await client.post("/api/execute", content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert says in response.json()["error"]
        assert (await client.get("/api/executions", headers=auth("tok-read"))).json() == []
        fine = await client.post("/api/execute", content=b'{"path": "tests/sec", "payload": {"fire": "\\ud83d\\udd25"}}',
                                 headers=headers)
        assert fine.status_code == 200, fine.text

    served(url, scenario)


def test_a_body_that_is_not_json_is_a_422_that_says_where(url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        headers = {**auth("tok-exec"), "Content-Type": "application/json"}
        response = await client.post("/api/execute", content=b'{"path": "tests/sec",\n "payload": }', headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "body: invalid JSON at character 34: Expecting value"
        assert (await client.get("/api/executions", headers=auth("tok-read"))).json() == []

    served(url, scenario)


def test_hostile_yaml_in_bodies_is_a_one_line_4xx(url: str) -> None:
    laughs = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10))
    bomb = PLAYBOOK + "workload:\n  l0: &l0 lol\n" + "".join("  " + line for line in laughs.splitlines(True))

    async def scenario(client: httpx.AsyncClient) -> None:
        admin = auth("tok-admin")
        for content in (bomb, PLAYBOOK + "workload: &x [*x]\n", PLAYBOOK + "workload:\n  ? [a]\n  : b\n"):
            response = await client.post("/api/catalog/register", json={"content": content}, headers=admin)
            assert response.status_code == 422, response.text
            assert "\n" not in response.json()["error"]
        credential = "name: c\ntype: generic\ndata:\n  l0: &l0 lol\n" + "".join("  " + x for x in laughs.splitlines(True))
        response = await client.post("/api/credentials", json=credential, headers=admin)
        assert response.status_code == 400 and "alias bomb" in response.json()["error"]
        assert (await client.get("/api/credentials", headers=admin)).json() == []
        listed = (await client.post("/api/catalog/list", headers=admin)).json()["entries"]
        assert [entry["version"] for entry in listed] == [1]

    served(url, scenario)


def test_execution_ids_from_outside_are_positive_64_bit_numbers(url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        headers = auth("tok-exec")
        for bad in ("-5", "abc", str(2**63), 2**64, "007", "", " 12", "1.5", -1, 0):
            start = {"event_type": "workflow.start", "path": "tests/sec", "execution_id": bad}
            response = await client.post("/api/events", json=start, headers=headers)
            assert response.status_code in (400, 422), (bad, response.text)
            run = await client.post("/api/execute", json={"path": "tests/sec", "parent_execution_id": bad},
                                    headers=headers)
            assert run.status_code in (400, 422), (bad, run.text)
        assert (await client.get("/api/executions", headers=headers)).json() == []
        good = await client.post("/api/events", json={"event_type": "workflow.start", "path": "tests/sec",
                                                      "execution_id": 2**63 - 1}, headers=headers)
        assert good.status_code == 200 and good.json()["execution_id"] == str(2**63 - 1)

    served(url, scenario)
