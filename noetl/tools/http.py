"""``http``: call an HTTP API.

Config: ``method`` (GET), ``url`` (alias ``endpoint``), ``headers``, ``params``, ``json`` /
``body`` / ``data`` / v1 ``payload``, ``auth`` (credential), ``timeout`` (alias ``timeout_seconds``;
seconds, default 30), ``verify_ssl`` (default true), ``follow_redirects`` (default true).

Result: ``{status_code, headers, url, elapsed, data}`` with ``data`` parsed from JSON when the
response says it is JSON, else the text. A non-2xx status raises a ToolError carrying ``http.status``
and the body, whose kind classifies it (:func:`status_error_kind`), retryable for 429 and 5xx;
no answer at all is ``timeout`` or ``connection``.

Connections are pooled: one ``httpx.AsyncClient`` per event loop and (verify_ssl,
follow_redirects) pair, sized by NOETL_HTTP_MAX_CONNECTIONS / NOETL_HTTP_MAX_KEEPALIVE_CONNECTIONS /
NOETL_HTTP_KEEPALIVE_EXPIRY_SECONDS, so a parallel loop of thousands of calls reuses sockets.
Call :func:`close_http_clients` at shutdown.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from dataclasses import dataclass
from typing import Any

import httpx

from noetl.errors import ToolError
from noetl.settings import load_settings
from noetl.tools._auth import resolve_auths
from noetl.tools.base import ToolCall

DEFAULT_TIMEOUT_SECONDS = 30.0
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_MAX_ERROR_BODY_CHARS = 65_536  # an HTML error page should not bloat the event log

# (id(loop), verify_ssl, follow_redirects) -> the loop's client shards. Clients are bound to the event
# loop that created them, so each loop gets its own.
#
# Why shards: httpcore's connection pool scans every pooled connection for each request it assigns,
# so one client holding 50 keep-alive connections spends more CPU in that scan than in the request
# (1,000 calls at 50 in flight reached a third of a plain httpx script's throughput). Spreading the
# configured connections over small clients, used in turn, keeps each scan short; the totals stay as
# the NOETL_HTTP_* settings say.
CONNECTIONS_PER_SHARD = 10


@dataclass(slots=True)
class _ClientShards:
    loop: asyncio.AbstractEventLoop
    clients: list[httpx.AsyncClient]
    turn: int = 0

    def next(self) -> httpx.AsyncClient:
        self.turn = (self.turn + 1) % len(self.clients)
        return self.clients[self.turn]

    @property
    def is_closed(self) -> bool:
        return any(client.is_closed for client in self.clients)


_clients: dict[tuple[int, bool, bool], _ClientShards] = {}


# --------------------------------------------------------------------------------------------
# Shared clients
# --------------------------------------------------------------------------------------------


def _http2_enabled(enabled_in_settings: bool) -> bool:
    return enabled_in_settings and importlib.util.find_spec("h2") is not None


def _new_shards(loop: asyncio.AbstractEventLoop, verify_ssl: bool, follow_redirects: bool) -> _ClientShards:
    settings = load_settings()
    count = max(1, settings.http_max_keepalive_connections // CONNECTIONS_PER_SHARD)
    limits = httpx.Limits(
        max_connections=max(1, settings.http_max_connections // count),
        max_keepalive_connections=max(1, settings.http_max_keepalive_connections // count),
        keepalive_expiry=settings.http_keepalive_expiry_seconds,
    )
    clients = [
        httpx.AsyncClient(
            limits=limits,
            verify=verify_ssl,
            follow_redirects=follow_redirects,
            http2=_http2_enabled(settings.http_enable_http2),
            timeout=DEFAULT_TIMEOUT_SECONDS,
        )
        for _ in range(count)
    ]
    return _ClientShards(loop=loop, clients=clients)


def get_http_client(*, verify_ssl: bool = True, follow_redirects: bool = True) -> httpx.AsyncClient:
    """A pooled client for the running event loop and these TLS / redirect settings (shards in turn)."""
    loop = asyncio.get_running_loop()
    _forget_clients_of_closed_loops()
    key = (id(loop), verify_ssl, follow_redirects)
    shards = _clients.get(key)
    if shards is None or shards.loop is not loop or shards.is_closed:
        shards = _new_shards(loop, verify_ssl, follow_redirects)
        _clients[key] = shards
    return shards.next()


def _forget_clients_of_closed_loops() -> None:
    for key, shards in list(_clients.items()):
        if shards.loop.is_closed():
            del _clients[key]


async def close_http_clients() -> None:
    """Close the pooled clients of the running event loop (call at shutdown and in tests)."""
    loop = asyncio.get_running_loop()
    _forget_clients_of_closed_loops()
    for key, shards in list(_clients.items()):
        if shards.loop is loop:
            del _clients[key]
            for client in shards.clients:
                await client.aclose()


# --------------------------------------------------------------------------------------------
# Building the request
# --------------------------------------------------------------------------------------------


def _as_bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() not in {"false", "0", "no", "off"}
    return bool(value)


def _timeout_seconds(value: Any) -> float:
    if value is None or value == "":
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ToolError(
            f"http tool: `timeout` must be a number of seconds, got {value!r}", kind="config"
        ) from None
    if seconds <= 0:
        raise ToolError("http tool: `timeout` must be positive", kind="config")
    return seconds


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ToolError(f"http tool: `{field}` must be a mapping", kind="config")
    return {str(k): _param_text(v) for k, v in value.items() if v is not None}


def _param_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [_param_text(v) for v in value]
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _body_kwargs(config: dict[str, Any], method: str, params: dict[str, Any],
                 headers: httpx.Headers) -> dict[str, Any]:
    """httpx keyword arguments for the body: ``json`` > ``body`` > ``data`` > ``payload``."""
    if config.get("json") is not None:
        return {"json": config["json"]}
    if config.get("payload") is not None and all(config.get(k) is None for k in ("body", "data")):
        return _payload_kwargs(config["payload"], method, params, headers)
    body = config.get("body")
    if body is not None:
        if isinstance(body, dict | list):
            return {"json": body}
        return {"content": body if isinstance(body, bytes) else str(body).encode("utf-8")}
    data = config.get("data")
    if data is None:
        return {}
    if isinstance(data, dict):
        if method in _BODYLESS_METHODS:
            # v1 playbooks put GET query arguments under `data`.
            params.update({k: v for k, v in _string_map(data, "data").items() if k not in params})
            return {}
        return {"data": _string_map(data, "data")}
    if isinstance(data, list):
        return {"json": data}
    return {"content": str(data).encode("utf-8")}


def _apply_credential(
    credential: dict[str, Any], headers: httpx.Headers, params: dict[str, Any]
) -> httpx.Auth | None:
    """Add the credential to the request; returns an httpx auth object for basic auth."""
    data = credential.get("data") or {}
    cred_type = str(credential.get("type") or "generic").lower()
    name = credential.get("name")
    for header, value in (data.get("headers") or {}).items():
        headers.setdefault(str(header), str(value))
    token = data.get("token") or data.get("access_token") or data.get("bearer_token")
    username = data.get("username") or data.get("user") or data.get("login")
    api_key = data.get("api_key") or data.get("apikey") or data.get("key")
    if cred_type in ("generic", "http"):
        # Infer the scheme from the fields a generic credential carries.
        cred_type = "bearer" if token else "basic" if username else "api_key" if api_key else "headers"
    if cred_type in ("bearer", "token", "oauth2", "oauth"):
        if not token:
            raise ToolError(f"credential {name!r} of type {cred_type} has no `token`", kind="config")
        headers.setdefault("Authorization", f"Bearer {token}")
        return None
    if cred_type == "basic":
        if not username:
            raise ToolError(f"credential {name!r} of type basic has no `username`", kind="config")
        return httpx.BasicAuth(str(username), str(data.get("password") or ""))
    if cred_type in ("api_key", "apikey"):
        if not (api_key or data.get("value")):
            raise ToolError(f"credential {name!r} of type api_key has no `api_key`", kind="config")
        _apply_api_key(str(api_key or data.get("value")), data, headers, params)
        return None
    if cred_type in ("headers", "header") and data.get("headers"):
        return None
    raise ToolError(
        f"credential {name!r} of type {cred_type!r} cannot authenticate an HTTP request "
        "(use bearer, basic, api_key or generic)",
        kind="config",
    )


def _apply_api_key(key: str, data: dict[str, Any], headers: httpx.Headers, params: dict[str, Any]) -> None:
    location = str(data.get("in") or data.get("location") or "").lower()
    param_name = data.get("param") or data.get("query_param")
    if location == "query" or (param_name and location != "header"):
        params.setdefault(str(param_name or "api_key"), key)
    else:
        headers.setdefault(str(data.get("header") or data.get("header_name") or "X-API-Key"), key)


# --------------------------------------------------------------------------------------------
# Reading the response
# --------------------------------------------------------------------------------------------


def _is_json_content_type(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime in ("application/json", "text/json") or mime.endswith("+json")


def _response_data(response: httpx.Response) -> Any:
    """Parsed JSON for JSON content types, otherwise the text; None for no body at all."""
    content_type = response.headers.get("content-type", "")
    if not content_type and not response.content:
        return None  # e.g. 204 No Content
    if not _is_json_content_type(content_type):
        return response.text
    if not response.content.strip():
        return None
    return json.loads(response.content)


def _truncated(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_BODY_CHARS else text[:_MAX_ERROR_BODY_CHARS] + "...[truncated]"


def _error_body(response: httpx.Response) -> Any:
    """The body of an error response: JSON when it parses, else (truncated) text."""
    try:
        body = _response_data(response)
    except ValueError:
        body = response.text
    return _truncated(body) if isinstance(body, str) else body


def status_error_kind(status: int) -> str:
    """The error kind of a non-2xx status, for policies such as ``output.error.kind == 'rate_limit'``."""
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limit"
    if status >= 500:
        return "server_error"
    return "client_error"  # any other 4xx, and a 3xx that was not followed


# Request headers whose values authenticate the caller, whatever the playbook built them from.
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")


def _remember_what_authenticates(call: ToolCall, url: str, headers: httpx.Headers) -> None:
    """The call's secrets learn what authenticates this request even when it came from a workload
    or a payload (``headers: {Authorization: "Bearer {{ workload.token }}"}``, a URL's password), so
    that a server echoing it back (an error page quoting the Authorization header) and the result's
    ``url`` read ``***``."""
    from noetl.tools._auth import remember_secrets

    for name in _CREDENTIAL_HEADERS:
        for value in headers.get_list(name):
            scheme, _, token = value.partition(" ")
            remember_secrets(call, [token if token and scheme.isalpha() else value])
    try:
        password = httpx.URL(url).password
    except (httpx.InvalidURL, TypeError, ValueError):
        return
    if password:
        remember_secrets(call, [password])


def _without_passwords(message: str) -> str:
    """An error message naming a URL, with the password of ``scheme://user:password@host`` blanked:
    a URL is often built from a workload or a payload, where nothing marks the password secret."""
    from noetl.secrets import redact_connection_secrets

    return redact_connection_secrets(message)


# No response at all: the envelope's `http` still says so, so `output.http.status` evaluates.
def _no_response() -> dict[str, Any]:
    return {"http": {"status": None, "headers": {}}}


def _raise_for_status(response: httpx.Response, method: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    body = _error_body(response)
    raise ToolError(
        _without_passwords(f"HTTP {status} from {method} {response.request.url}"),
        kind=status_error_kind(status),
        retryable=status == 429 or status >= 500,
        details={"http": {"status": status, "headers": dict(response.headers)}, "data": body},
    )


def _result(response: httpx.Response, method: str) -> dict[str, Any]:
    try:
        data = _response_data(response)
    except ValueError as exc:
        raise ToolError(
            _without_passwords(f"invalid JSON in the response from {method} {response.request.url}: {exc}"),
            kind="http_decode",
            details={"http": {"status": response.status_code, "headers": dict(response.headers)},
                     "data": _truncated(response.text)},
        ) from exc
    return {
        "status_code": response.status_code,
        "headers": dict(response.headers),
        "url": str(response.url),
        "elapsed": response.elapsed.total_seconds(),
        "data": data,
    }


def _payload_kwargs(payload: Any, method: str, params: dict[str, Any], headers: httpx.Headers) -> dict[str, Any]:
    """v1 ``payload:``: the body, JSON unless the request says it sends a form (as NoETL's v1 http
    tool sent it); on a method without a body, query arguments, as a v1 ``data:`` there."""
    if method in _BODYLESS_METHODS:
        if isinstance(payload, dict):
            params.update({k: v for k, v in _string_map(payload, "payload").items() if k not in params})
        return {}
    if isinstance(payload, dict) and "x-www-form-urlencoded" in headers.get("content-type", "").lower():
        return {"data": _string_map(payload, "payload")}
    if isinstance(payload, dict | list):
        return {"json": payload}
    return {"content": payload if isinstance(payload, bytes) else str(payload).encode("utf-8")}


# --------------------------------------------------------------------------------------------
# The tool
# --------------------------------------------------------------------------------------------


async def run_http(config: dict[str, Any], call: ToolCall) -> dict[str, Any]:
    method = str(config.get("method") or "GET").upper()
    url = config.get("url") or config.get("endpoint")
    if not url or not isinstance(url, str):
        raise ToolError("http tool needs a `url`", kind="config")
    headers = httpx.Headers(_string_map(config.get("headers"), "headers"))
    params: dict[str, Any] = _string_map(config.get("params"), "params")
    body = _body_kwargs(config, method, params, headers)
    auth = None
    for credential in await resolve_auths(config.get("auth"), call):
        auth = _apply_credential(credential, headers, params) or auth
    _remember_what_authenticates(call, url, headers)
    client = get_http_client(
        verify_ssl=_as_bool(config.get("verify_ssl"), True),
        follow_redirects=_as_bool(config.get("follow_redirects"), True),
    )
    # `timeout_seconds`: the spelling of newer NoETL playbooks
    timeout = _timeout_seconds(config["timeout"] if config.get("timeout") is not None else config.get("timeout_seconds"))
    try:
        response = await client.request(
            method,
            url,
            headers=headers,
            params=params or None,
            auth=auth or httpx.USE_CLIENT_DEFAULT,
            timeout=timeout,
            **body,
        )
    except httpx.TimeoutException as exc:
        raise ToolError(
            _without_passwords(f"{method} {url} timed out after {timeout:g}s ({type(exc).__name__})"),
            kind="timeout",
            retryable=True,
            details=_no_response(),
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ToolError(_without_passwords(f"invalid URL for {method} {url}: {exc}"), kind="config") from exc
    except httpx.TransportError as exc:
        raise ToolError(
            _without_passwords(f"cannot reach {method} {url}: {str(exc) or type(exc).__name__}"),
            kind="connection",
            retryable=True,
            details=_no_response(),
        ) from exc
    _raise_for_status(response, method)
    return _result(response, method)
