"""Webhooks through the real server (in-process ASGI on a throwaway PostgreSQL): a signed or
token delivery starts an execution with the mapped payload; a bad signature, an expired
timestamp or a replayed delivery starts nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from test_distributed_cluster import create_database

from noetl.hooks import signature
from noetl.server.app import create_app
from noetl.server.state import ServerConfig
from noetl.store.postgres import PostgresStore

ADMIN = {"Authorization": "Bearer admin-token"}
PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: hooked, path: tests/hooked}
workflow:
  - step: start
    tool: {kind: noop}
"""
SECRET = "hook-secret-value"
TEMPLATE = {"ref": "{{ body.ref }}", "pusher": "{{ body.pusher.name }}", "event": "{{ headers['x-github-event'] }}"}


@pytest.fixture
def url(pg_cluster: dict[str, Any]) -> str:
    return create_database(pg_cluster)


Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


def served(url: str, scenario: Scenario) -> None:
    async def main() -> None:
        app = create_app(ServerConfig(database_url=url, api_token="admin-token", reap_interval=0.05))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://noetl.test") as client:
            response = await client.post("/api/catalog/register", json={"content": PLAYBOOK}, headers=ADMIN)
            assert response.status_code == 200, response.text
            await scenario(client)

    asyncio.run(main())


def signed(body: bytes, *, delivery: str, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(at if at is not None else time.time()))
    return {"X-NoETL-Signature": signature(secret, timestamp, body), "X-NoETL-Timestamp": timestamp,
            "X-NoETL-Delivery": delivery, "Content-Type": "application/json", "X-GitHub-Event": "push"}


async def executions(url: str) -> list[Any]:
    async with PostgresStore(url) as store:
        return await store.list_executions()


async def payload_of(url: str, execution_id: str) -> dict[str, Any]:
    async with PostgresStore(url) as store:
        record = await store.get_execution(execution_id)
        assert record is not None
        return record.payload


def test_signed_delivery_starts_the_playbook_and_refusals_start_nothing(url: str) -> None:
    body = json.dumps({"ref": "refs/heads/main", "pusher": {"name": "ada"}}).encode()

    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post("/api/hooks", headers=ADMIN, json={
            "name": "github", "path": "tests/hooked", "secret": SECRET, "payload_template": TEMPLATE})
        assert response.status_code == 200, response.text
        assert SECRET not in response.text
        listed = await client.get("/api/hooks", headers=ADMIN)
        assert [(h["name"], h["auth"]) for h in listed.json()] == [("github", "signature")]
        assert SECRET not in listed.text
        assert (await client.get("/api/hooks")).status_code == 401  # management needs the API token

        refused = [
            (signed(body, delivery="d-bad", secret="wrong"), 401),
            (signed(body, delivery="d-old", at=time.time() - 301), 401),
            ({**signed(body, delivery="d-x"), "X-NoETL-Timestamp": "soon"}, 401),
            ({k: v for k, v in signed(body, delivery="d-none").items() if k != "X-NoETL-Signature"}, 401),
        ]
        for headers, status in refused:
            response = await client.post("/api/hooks/github", content=body, headers=headers)
            assert response.status_code == status, response.text
        tampered = await client.post("/api/hooks/github", content=body.replace(b"ada", b"eve"),
                                     headers=signed(body, delivery="d-tampered"))
        assert tampered.status_code == 401
        assert await executions(url) == []

        good = await client.post("/api/hooks/github", content=body, headers=signed(body, delivery="d-1"))
        assert good.status_code == 200, good.text
        execution_id = good.json()["execution_id"]
        assert await payload_of(url, execution_id) == {"ref": "refs/heads/main", "pusher": "ada", "event": "push"}

        replay = await client.post("/api/hooks/github", content=body, headers=signed(body, delivery="d-1"))
        assert replay.status_code == 409, replay.text
        assert [e.execution_id for e in await executions(url)] == [execution_id]

        unknown = await client.post("/api/hooks/nope", content=body, headers=signed(body, delivery="d-2"))
        assert unknown.status_code == 404
        not_json = b"{not json"
        bad_body = await client.post("/api/hooks/github", content=not_json, headers=signed(not_json, delivery="d-3"))
        assert bad_body.status_code == 400, bad_body.text
        # A refused body did not use up its delivery id.
        again = await client.post("/api/hooks/github", content=body, headers=signed(body, delivery="d-3"))
        assert again.status_code == 200, again.text

    served(url, scenario)


def test_token_delivery_passes_the_json_body_as_payload(url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post("/api/hooks", headers=ADMIN, json={
            "name": "deploy", "path": "tests/hooked", "token": "hook-token-1"})
        assert response.status_code == 200, response.text
        assert "hook-token-1" not in response.text
        started = []
        for headers in ({"Authorization": "Bearer hook-token-1"}, {"X-NoETL-Token": "hook-token-1"}):
            good = await client.post("/api/hooks/deploy", json={"env": "prod"}, headers=headers)
            assert good.status_code == 200, good.text
            started.append(good.json()["execution_id"])
        assert [await payload_of(url, e) for e in started] == [{"env": "prod"}, {"env": "prod"}]
        for headers in ({}, {"X-NoETL-Token": "wrong"}, ADMIN):
            refused = await client.post("/api/hooks/deploy", json={"env": "prod"}, headers=headers)
            assert refused.status_code == 401, refused.text
        not_object = await client.post("/api/hooks/deploy", json=[1, 2], headers={"X-NoETL-Token": "hook-token-1"})
        assert not_object.status_code == 400
        assert len(await executions(url)) == 2

        bad = await client.post("/api/hooks", headers=ADMIN, json={"name": "both", "path": "tests/hooked",
                                                                  "secret": "a", "token": "b"})
        assert bad.status_code == 400 and "secret/token" in bad.text
        missing = await client.post("/api/hooks", headers=ADMIN, json={"name": "x", "path": "no/such", "token": "t"})
        assert missing.status_code == 404
        deleted = await client.delete("/api/hooks/deploy", headers=ADMIN)
        assert deleted.status_code == 200
        gone = await client.post("/api/hooks/deploy", json={}, headers={"X-NoETL-Token": "hook-token-1"})
        assert gone.status_code == 404

    served(url, scenario)
