"""The console served by `noetl server start` (in-process, on a real PostgreSQL): pages behind the
API token, actions through the decision core, and the OpenAPI pages with assets served locally."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from test_distributed_cluster import create_database

from noetl.server.app import create_app
from noetl.server.state import ServerConfig

TOKEN = "console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACTION = {**AUTH, "X-NoETL-Console": "1"}
PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: fanin, path: console/fanin}
workload: {n: 3}
workflow:
  - step: start
    next: [{step: a}, {step: b}]
  - step: a
    loop: {in: "{{ range(workload.n) | list }}", iterator: i}
    tool: {kind: noop}
    next: [{step: join}]
  - step: b
    tool: {kind: noop}
    next: [{step: join}]
  - step: join
"""


def served(url: str, scenario: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        app = create_app(ServerConfig(database_url=url, api_token=TOKEN, reap_interval=0.05))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://noetl.test") as client:
            assert (await client.post("/api/catalog/register", json={"content": PLAYBOOK},
                                      headers=AUTH)).status_code == 200
            await scenario(client)

    asyncio.run(main())


@pytest.fixture
def url(pg_cluster: dict[str, Any]) -> str:
    return create_database(pg_cluster)


def test_console_on_the_server_runs_shows_and_cancels(url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        assert (await client.get("/")).status_code == 303  # log in first
        started = await client.post("/console/actions/run", headers=ACTION,
                                    json={"path": "console/fanin", "set": {"n": "4"}})
        assert started.status_code == 200, started.text
        execution_id = started.json()["execution_id"]
        cookie = {"Cookie": f"noetl_token={TOKEN}"}
        listing = await client.get("/", headers=cookie)
        assert execution_id in listing.text and "console/fanin" in listing.text
        far = await client.get("/", params={"page": "99999999999999999999999"}, headers=cookie)
        assert far.status_code == 200 and execution_id not in far.text  # was "bigint out of range", a 503
        page = (await client.get(f"/executions/{execution_id}", headers=cookie)).text
        # No worker runs here: the first step waits; the graph shows the fan-in step and the loop.
        assert re.search(r'<g class="node (running|pending)" data-step="start"', page)
        assert "noop · fan-in" in page and "noop · loop" in page
        # A step's whole result (the page's "as JSON" link) is read with the page's cookie.
        assert (await client.get(f"/executions/{execution_id}/results/a")).status_code == 303
        pending = await client.get(f"/executions/{execution_id}/results/a", headers=cookie)
        assert pending.status_code == 404 and "has no result for step &#39;a&#39;" in pending.text
        for action in ("rerun", "resume"):  # the page's buttons post to the server's API
            assert f'<button id="{action}" data-url="/api/executions/{execution_id}/{action}" >' in page
        payload = (await client.get(f"/api/executions/{execution_id}", headers=AUTH)).json()["payload"]
        assert payload == {"n": 4}
        assert (await client.post(f"/console/actions/cancel/{execution_id}",
                                  headers={**cookie, "X-NoETL-Console": "1"})).status_code == 401
        cancelled = await client.post(f"/console/actions/cancel/{execution_id}", headers=ACTION)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text

    served(url, scenario)


def test_openapi_pages_load_their_assets_from_this_server(url: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
            assert assets, html
            for asset in assets:
                assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
                assert (await client.get(asset)).status_code == 200
        description = (await client.get("/openapi.json")).json()["info"]["description"]
        assert "SPEC" not in description

    served(url, scenario)
