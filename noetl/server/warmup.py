"""Warming the API's routes up before the server answers its first client.

FastAPI builds each included router's per-route state the first time a request is routed through it
(40-50 ms of CPU for this app on a 2-core machine): without a warm-up the first client of every
server start pays for it, often the first of a burst of submissions.
"""

from __future__ import annotations

from contextlib import suppress

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Scope

# A path under /api that no route matches: routing it visits every route and answers 404 itself.
WARM_UP_PATH = "/api/-warm-up-"


async def warm_up_routes(router: ASGIApp) -> None:
    """Route one request that matches no route through ``router`` (the app's router, behind the
    middleware: no authentication, no request log, nothing stored, nothing sent to a client)."""
    scope: Scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": WARM_UP_PATH, "raw_path": WARM_UP_PATH.encode(),
             "root_path": "", "query_string": b"", "headers": [], "client": None, "server": None}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: Message) -> None:
        return None

    with suppress(HTTPException):  # the router's 404, when it raises it rather than answering
        await router(scope, receive, send)
