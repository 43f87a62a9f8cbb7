"""The API's front door, before FastAPI reads a body: authentication (401), body size (413) and
strict JSON (400) for every ``/api`` request.

FastAPI parses a body before it runs route dependencies, so without this an anonymous client could
make the server parse (and a malformed body answer 422 to) a request it may not make at all; and
Python's JSON reader accepts NaN, lone surrogates and any nesting, which fail later, deep inside,
as 500s or 503s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from noetl.errors import InputError
from noetl.safejson import InvalidJson, loads_strict
from noetl.server.auth import PUBLIC, PublicRoute, bearer_token, role_needed
from noetl.server.errors import error_body
from noetl.server.tokens import TokenRegistry
from noetl.waiting import within

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Bodies above this are checked in a thread: the check costs about 0.1 s per million values, time
# the event loop would otherwise take from every other client.
_CHECK_IN_THREAD_BYTES = 64 * 1024
# Where the guard leaves the body it parsed (``scope["state"]``), for ParsedBodyRoute.
_PARSED_BODY = "noetl_parsed_body"


class RequestGuard:
    def __init__(self, app: ASGIApp, *, tokens: TokenRegistry, max_body_bytes: int,
                 public: list[PublicRoute] | None = None, body_seconds: float = 10.0) -> None:
        self.app = app
        self.public = public or []
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.body_seconds = body_seconds  # between two parts of a body: a client that stalls holds a task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/api"):
            await self.app(scope, receive, send)
            return
        if not _url_is_storable(scope):
            await _answer(send, 400, "the URL holds a NUL character or invalid UTF-8 (in the path or query)")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.tokens.enabled and not self._is_public(scope):
            token = bearer_token(headers)
            role = self.tokens.role_of(token) if token else None
            if role is None:
                await _answer(send, 401, "missing or unknown bearer token (Authorization: Bearer <token>)",
                              extra_headers=[(b"www-authenticate", b"Bearer")])
                return
            scope.setdefault("state", {})["noetl_role"] = role
        if scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _answer(send, 413, f"request body larger than {self.max_body_bytes} bytes (NOETL_MAX_BODY_BYTES)")
            return
        try:
            body = await self._read_body(receive)
        except TimeoutError:
            await _answer(send, 408, f"request body not received: nothing came for {self.body_seconds:g} s "
                                     "(NOETL_REQUEST_TIMEOUT_SECONDS)", extra_headers=[(b"connection", b"close")])
            return
        if body is None:
            await _answer(send, 413, f"request body larger than {self.max_body_bytes} bytes (NOETL_MAX_BODY_BYTES)")
            return
        if body.strip() and _is_json(headers.get("content-type")):
            try:
                scope.setdefault("state", {})[_PARSED_BODY] = await _check_strict(body)
            except InvalidJson:
                pass  # not JSON at all: FastAPI answers 422 with its own details
            except InputError as exc:
                await _answer(send, 400, str(exc))
                return
        await self.app(scope, _replay(body, receive), send)

    def _is_public(self, scope: Scope) -> bool:
        path, method = str(scope.get("path", "")), scope.get("method")
        if any(method in methods and regex.match(path) for methods, regex in self.public):
            return True
        app = scope.get("app")
        router = getattr(app, "router", None)
        for route in getattr(router, "routes", ()):
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return role_needed(getattr(route, "endpoint", None)) == PUBLIC
        return False

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await within(receive(), self.body_seconds)
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


async def _check_strict(body: bytes) -> Any:
    if len(body) > _CHECK_IN_THREAD_BYTES:
        return await asyncio.to_thread(loads_strict, body, "body")
    return loads_strict(body, "body")


class ParsedBodyRoute(APIRoute):
    """A route that reads its JSON body as the guard parsed it, rather than parsing it again on the
    event loop as FastAPI does (a 10 MB body of numbers: about 0.2 s on an idle core, during which
    no other client is answered). Every router of the server's API is made with it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def reusing_the_parsed_body(request: Request) -> Response:
            state = request.scope.get("state")
            if state and _PARSED_BODY in state:
                request._json = state.pop(_PARSED_BODY)  # what Request.json() returns once read
            return await handler(request)

        return reusing_the_parsed_body


def _url_is_storable(scope: Scope) -> bool:
    """Path and query values end up in SQL parameters; PostgreSQL refuses NUL, UTF-8 refuses lone
    surrogates: refuse them here, as 400, rather than as a 503 from the store."""
    query = unquote_to_bytes(scope.get("query_string", b"") or b"")
    path = str(scope.get("path", ""))
    try:
        path.encode("utf-8")
        query.decode("utf-8")
    except UnicodeError:
        return False
    return "\x00" not in path and b"\x00" not in query


def _is_json(content_type: str | None) -> bool:
    # FastAPI treats a body without a content type as JSON too.
    return not content_type or "json" in content_type.split(";")[0].lower()


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _answer(send: Send, status: int, message: str, extra_headers: list[tuple[bytes, bytes]] | None = None
                  ) -> None:
    kind = {401: "AuthError", 408: "Timeout", 413: "TooLarge"}.get(status, "InputError")
    body = json.dumps(error_body(message, kind), ensure_ascii=True).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *(extra_headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
