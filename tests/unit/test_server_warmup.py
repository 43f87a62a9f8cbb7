"""The server's route warm-up (noetl/server/warmup.py) routes a request that must reach no endpoint:
a route added later that matched it would run, with no client and no authentication, at every start."""

from __future__ import annotations

import asyncio

import httpx
from starlette.routing import Match

from noetl.server.app import create_app
from noetl.server.state import ServerConfig
from noetl.server.tokens import TokenRegistry
from noetl.server.warmup import WARM_UP_PATH, warm_up_routes


def _app(tokens: TokenRegistry | None = None):  # type: ignore[no-untyped-def]
    return create_app(ServerConfig(database_url="postgresql://nowhere/none", tokens=tokens or TokenRegistry()))


def test_the_warm_up_path_matches_no_route_for_any_method() -> None:
    app = _app()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {"type": "http", "method": method, "path": WARM_UP_PATH, "root_path": "", "headers": []}
        matches = [route for route in app.router.routes if route.matches(scope)[0] != Match.NONE]
        assert matches == [], (method, matches)


def test_after_the_warm_up_the_api_still_refuses_a_request_without_a_token() -> None:
    app = _app(TokenRegistry.build(api_token="a-long-enough-admin-token"))

    async def scenario() -> httpx.Response:
        await warm_up_routes(app.router)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.post("/api/execute", json={"path": "x"})

    response = asyncio.run(scenario())
    assert response.status_code == 401
    assert response.json()["kind"] == "AuthError"
