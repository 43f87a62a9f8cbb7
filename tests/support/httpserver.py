"""A real HTTP server on 127.0.0.1 for tests (threaded ``http.server``, HTTP/1.1 keep-alive).

Routes:

- ``/echo`` (any method): the request back as JSON ``{method, path, query, headers, json, form, body}``
- ``/paginated?page=N[&pages=P&size=S]``: ``{items, page, hasMore, data: {items, page, hasMore}}``
- ``/flaky/<key>?fail=N[&status=503]``: fails N times (per key) with ``status``, then 200
- ``/status/<code>``: answers ``code`` with a JSON body
- ``/text``: ``text/plain``; ``/badjson``: invalid JSON under ``application/json``; ``/empty``: 204
- ``/slow?seconds=S``: answers after S seconds
- ``/bearer``, ``/basic``, ``/apikey``: 401 unless the expected token / user:password / key is sent
- ``/token``: an OAuth2 client-credentials token endpoint
- ``/redirect``: 302 to ``/echo``
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from noetl.demo.services import KeepAliveHandler, KeepAliveHTTPServer


class _Server(KeepAliveHTTPServer):
    def __init__(self, owner: LocalHTTPServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(KeepAliveHandler):
    timeout = 10
    server: _Server

    # plumbing ------------------------------------------------------------------------------
    def _reply(
        self,
        status: int,
        body: Any,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        if isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode("utf-8")
        else:
            payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(0 if status == 204 else len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if status != 204 and self.command != "HEAD":
            self.wfile.write(payload)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query).items()}
        body = self._read_body()
        self.server.owner.record(self.command, parts.path, query, dict(self.headers.items()), body)
        route = parts.path.strip("/").split("/")
        handler = getattr(self, f"route_{route[0] or 'root'}", None)
        if handler is None:
            self._reply(404, {"error": f"no route {parts.path}"})
            return
        handler(route[1:], query, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    # routes --------------------------------------------------------------------------------
    def route_echo(self, _rest: list[str], query: dict[str, Any], body: bytes) -> None:
        content_type = self.headers.get("Content-Type", "")
        parsed_json = None
        form = None
        if "json" in content_type and body:
            parsed_json = json.loads(body)
        elif "x-www-form-urlencoded" in content_type:
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        self._reply(
            200,
            {
                "method": self.command,
                "path": urlsplit(self.path).path,
                "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "json": parsed_json,
                "form": form,
                "body": body.decode("utf-8", "replace"),
            },
        )

    def route_paginated(self, _rest: list[str], query: dict[str, Any], _body: bytes) -> None:
        page = int(query.get("page", 1))
        pages = int(query.get("pages", 3))
        size = int(query.get("size", 2))
        items = (
            [{"id": (page - 1) * size + i + 1, "page": page} for i in range(size)] if page <= pages else []
        )
        has_more = page < pages
        self._reply(
            200,
            {
                "items": items,
                "page": page,
                "hasMore": has_more,
                "data": {"items": items, "page": page, "hasMore": has_more},
            },
        )

    def route_flaky(self, rest: list[str], query: dict[str, Any], _body: bytes) -> None:
        key = rest[0] if rest else "default"
        attempt = self.server.owner.count(f"flaky:{key}")
        if attempt <= int(query.get("fail", 2)):
            status = int(query.get("status", 503))
            self._reply(status, {"error": "try again", "attempt": attempt}, headers={"Retry-After": "0"})
            return
        self._reply(200, {"ok": True, "attempts": attempt})

    def route_status(self, rest: list[str], _query: dict[str, Any], _body: bytes) -> None:
        status = int(rest[0]) if rest else 500
        self._reply(status, {"error": f"status {status}", "code": status})

    def route_text(self, _rest: list[str], _query: dict[str, Any], _body: bytes) -> None:
        self._reply(200, "hello, world", content_type="text/plain; charset=utf-8")

    def route_badjson(self, _rest: list[str], _query: dict[str, Any], _body: bytes) -> None:
        self._reply(200, "{not json", content_type="application/json")

    def route_empty(self, _rest: list[str], _query: dict[str, Any], _body: bytes) -> None:
        self._reply(204, b"")

    def route_slow(self, _rest: list[str], query: dict[str, Any], _body: bytes) -> None:
        time.sleep(float(query.get("seconds", 2)))
        self._reply(200, {"slept": float(query.get("seconds", 2))})

    def route_bearer(self, _rest: list[str], _query: dict[str, Any], _body: bytes) -> None:
        expected = f"Bearer {self.server.owner.bearer_token}"
        if self.headers.get("Authorization") != expected:
            self._reply(401, {"error": "bad or missing bearer token"})
            return
        self._reply(200, {"authenticated": True, "scheme": "bearer"})

    def route_basic(self, _rest: list[str], _query: dict[str, Any], _body: bytes) -> None:
        owner = self.server.owner
        credentials = base64.b64encode(f"{owner.basic_user}:{owner.basic_password}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {credentials}":
            self._reply(401, {"error": "bad or missing basic credentials"})
            return
        self._reply(200, {"authenticated": True, "scheme": "basic", "user": owner.basic_user})

    def route_apikey(self, _rest: list[str], query: dict[str, Any], _body: bytes) -> None:
        key = self.server.owner.api_key
        header_name = query.get("header", "X-API-Key")
        if self.headers.get(header_name) != key and query.get("api_key") != key:
            self._reply(401, {"error": "bad or missing api key"})
            return
        self._reply(200, {"authenticated": True, "scheme": "api_key"})

    def route_token(self, _rest: list[str], _query: dict[str, Any], body: bytes) -> None:
        owner = self.server.owner
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        authorization = self.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials" or (client_id, client_secret) != (
            owner.oauth_client_id,
            owner.oauth_client_secret,
        ):
            self._reply(401, {"error": "invalid_client"})
            return
        self._reply(
            200,
            {
                "access_token": owner.bearer_token,
                "token_type": "bearer",
                "expires_in": 3600,
                "scope": form.get("scope"),
            },
        )

    def route_redirect(self, _rest: list[str], _query: dict[str, Any], _body: bytes) -> None:
        self._reply(302, {"moved": True}, headers={"Location": "/echo"})


class LocalHTTPServer:
    """Owns the server thread, the expected credentials and a log of received requests."""

    def __init__(self) -> None:
        self.bearer_token = "tok-" + "a1b2c3d4e5f6"
        self.basic_user = "alice"
        self.basic_password = "wonderland-42"
        self.api_key = "key-9f8e7d6c"
        self.oauth_client_id = "noetl-client"
        self.oauth_client_secret = "client-secret-5150"
        self.requests: list[dict[str, Any]] = []
        self._counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="test-http-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, method: str, path: str, query: dict[str, Any], headers: dict[str, str], body: bytes = b"") -> None:
        with self._lock:
            self.requests.append({"method": method, "path": path, "query": query, "headers": headers, "body": body})

    def count(self, key: str) -> int:
        with self._lock:
            self._counters[key] += 1
            return self._counters[key]

    def start(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def local_http_server() -> Iterator[LocalHTTPServer]:
    server = LocalHTTPServer().start()
    try:
        yield server
    finally:
        server.stop()
