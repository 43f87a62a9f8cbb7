"""Talking to a NoETL server from the CLI (httpx, imported only when a server URL is given)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from noetl.errors import ForbiddenError, InputError, NoetlError, NotFoundError


class ServerUnreachable(NoetlError):
    """No answer from the server (refused, reset, timed out) or a gateway's 502/503/504: what a
    server restart looks like to a client, which a watcher waits out."""


# What a load balancer (or the server, while its database restarts) answers for a server away.
_AWAY_STATUSES = (502, 503, 504)


def _client(server_url: str) -> Any:
    import httpx

    headers = {}
    from noetl.settings import load_settings

    token = load_settings().api_token
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=server_url.rstrip("/"), headers=headers, timeout=60)


def _check(response: Any, what: str) -> Any:
    if response.status_code == 404:
        raise NotFoundError(_detail(response) or f"{what}: not found")
    # The server's message names the field or the rule it refused, as the same command says it on
    # the local store; the request is named only when the server said nothing.
    if response.status_code == 403:
        raise ForbiddenError(_detail(response) or f"{what}: forbidden")
    if response.status_code in (400, 401, 409, 422):
        raise InputError(_detail(response) or f"{what}: refused ({response.status_code})")
    if response.status_code in _AWAY_STATUSES:
        raise ServerUnreachable(f"{what}: server error {response.status_code}: {_detail(response)}")
    if response.status_code >= 500:
        raise NoetlError(f"{what}: server error {response.status_code}: {_detail(response)}")
    return response.json()


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error") or body
        return detail if isinstance(detail, str) else str(detail)
    return str(body)


def _request(server_url: str, method: str, path: str, body: Any = None) -> Any:
    import httpx

    try:
        with _client(server_url) as client:
            response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"cannot reach the NoETL server at {server_url}: {exc}") from None
    return _check(response, f"{method} {path}")


def get_json(server_url: str, path: str) -> Any:
    return _request(server_url, "GET", path)


def stream_bytes(server_url: str, path: str, write: Callable[[bytes], Any]) -> int:
    """GET ``path`` and hand its body to ``write`` a chunk at a time, never holding it whole (a
    step's result can be hundreds of MB); return its size. A refusal raises as `get_json` does."""
    import httpx

    size = 0
    try:
        with _client(server_url) as client, client.stream("GET", path) as response:
            if response.status_code != 200:
                response.read()
                _check(response, f"GET {path}")
            for chunk in response.iter_bytes():
                write(chunk)
                size += len(chunk)
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"cannot reach the NoETL server at {server_url}: {exc}") from None
    return size


def post_json(server_url: str, path: str, body: Any) -> Any:
    return _request(server_url, "POST", path, body)


def delete_json(server_url: str, path: str) -> Any:
    return _request(server_url, "DELETE", path)


def submit(server_url: str | None, ref: str, payload: dict[str, Any], merge: bool) -> Any:
    if not server_url:
        raise InputError("-r distributed needs a server: --server-url URL, --host/--port, or NOETL_SERVER_URL")
    from noetl.api import split_catalog_ref

    if not ref.startswith("catalog://") and os.path.isfile(ref):
        # The server runs catalog entries only; a file here would otherwise be looked up as a path.
        raise InputError(f"{ref}: the server runs catalog entries, not files: register it first "
                         f"(noetl catalog register {ref}), then run catalog://<its metadata.path>")
    path, version = split_catalog_ref(ref)
    body: dict[str, Any] = {"path": path, "payload": payload, "merge": merge}
    if version is not None:
        body["version"] = version
    return post_json(server_url, "/api/execute", body)


def fetch_catalog_content(server_url: str, ref: str) -> str:
    from noetl.api import split_catalog_ref

    path, version = split_catalog_ref(ref)
    body: dict[str, Any] = {"path": path}
    if version is not None:
        body["version"] = version
    entry = post_json(server_url, "/api/catalog/resource", body)
    return str(entry.get("content", ""))
