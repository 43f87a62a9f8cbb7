"""Who may call which route: bearer tokens with roles (SPEC section 20).

Each route states the role it needs with :func:`requires` (undeclared routes need ``admin``, so a
new route is closed until someone decides otherwise); the router-level dependency
:func:`authorize` checks it, answering 401 without a known token and 403 for a role too low.
:class:`~noetl.server.guard.RequestGuard` answers the 401 earlier still, before a body is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from fastapi import APIRouter, HTTPException, Request
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from noetl.server.tokens import ROLES, TokenRegistry, role_allows

F = TypeVar("F", bound=Callable[..., object])
PUBLIC = "public"  # a route anyone may call (under /api: webhook deliveries, signed by their sender)
_ROLE_ATTR = "__noetl_role__"
_SCOPE_KEY = "noetl_role"


def requires(role: str) -> Callable[[F], F]:
    """Mark an endpoint with the role it needs (``read``, ``execute``, ``admin`` or ``public``)."""
    if role not in (*ROLES, PUBLIC):
        raise ValueError(f"unknown role {role!r}")

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ROLE_ATTR, role)
        return endpoint

    return mark


PublicRoute = tuple[frozenset[str], re.Pattern[str]]  # (methods, path regex)


def public_routes(prefix: str, routers: Iterable[APIRouter]) -> list[PublicRoute]:
    """The routes anyone may call, as (methods, path regex) under ``prefix``: the request guard
    checks tokens before routing, so it needs them up front (a webhook's signature is its auth)."""
    found: list[PublicRoute] = []
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and role_needed(route.endpoint) == PUBLIC:
                regex, _, _ = compile_path(prefix + route.path)
                found.append((frozenset(route.methods or ()), regex))
    return found


def role_needed(endpoint: object) -> str:
    return str(getattr(endpoint, _ROLE_ATTR, "admin"))


def bearer_token(headers: dict[str, str] | object) -> str | None:
    header = headers.get("authorization", "") if hasattr(headers, "get") else ""
    scheme, _, given = str(header or "").partition(" ")
    given = given.strip()
    return given if scheme.lower() == "bearer" and given else None


def unauthorized() -> HTTPException:
    return HTTPException(status_code=401, detail="missing or unknown bearer token (Authorization: Bearer <token>)",
                         headers={"WWW-Authenticate": "Bearer"})


def role_of_request(request: Request, tokens: TokenRegistry) -> str | None:
    """The caller's role (resolved once per request and kept in its scope)."""
    state = request.scope.setdefault("state", {})
    if _SCOPE_KEY not in state:
        token = bearer_token(request.headers)
        state[_SCOPE_KEY] = tokens.role_of(token) if token else None
    role: str | None = state[_SCOPE_KEY]
    return role


async def authorize(request: Request) -> None:
    """The one dependency every /api route goes through."""
    tokens: TokenRegistry = request.app.state.noetl_tokens
    route = request.scope.get("route")
    needed = role_needed(getattr(route, "endpoint", None))
    if needed == PUBLIC or not tokens.enabled:
        return
    granted = role_of_request(request, tokens)
    if granted is None:
        raise unauthorized()
    if not role_allows(granted, needed):
        raise HTTPException(status_code=403, detail=f"the {granted!r} role cannot do this (needs {needed!r})")
