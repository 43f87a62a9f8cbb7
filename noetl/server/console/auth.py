"""Who may see and do what in the console.

Pages are plain GETs a browser navigates to, so they accept the API token from the
``noetl_token`` cookie (set by the login page, ``SameSite=Strict``). Actions change state, so
they accept the token only from the ``Authorization`` header, which the page's script sends and a
cross-site form cannot: together with the Origin check that is the console's CSRF protection.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import Request

from noetl.errors import NoetlError
from noetl.server.tokens import ROLES, TokenRegistry, role_allows

COOKIE = "noetl_token"
__all__ = ["ROLES", "COOKIE"]


class ConsoleAuthError(NoetlError):
    """The request carries no token, or one whose role does not allow the action."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


# token -> its role, or None for an unknown token; None as a whole means no authentication.
RoleLookup = Callable[[str], str | None]


def registry_lookup(tokens: TokenRegistry) -> RoleLookup | None:
    """The API's tokens and roles (``NOETL_API_TOKEN``, ``NOETL_API_TOKENS``, a tokens file)."""
    return tokens.role_of if tokens.enabled else None


def _bearer(request: Request) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def page_role(request: Request, lookup: RoleLookup | None) -> str | None:
    """The role of the viewer of a page (``admin`` without authentication); None: log in first."""
    if lookup is None:
        return "admin"
    token = _bearer(request) or request.cookies.get(COOKIE)
    return lookup(token) if token else None


def require_action(request: Request, lookup: RoleLookup | None, role: str) -> None:
    """A state-changing request: same origin, and a header token whose role allows ``role``."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise ConsoleAuthError("cross-origin request refused", status=403)
    if request.headers.get("x-noetl-console") != "1":
        raise ConsoleAuthError("console actions are sent by the console's own script", status=403)
    if lookup is None:
        return
    token = _bearer(request)
    granted = lookup(token) if token else None
    if granted is None:
        raise ConsoleAuthError("missing or wrong token: log in to the console first", status=401)
    if not role_allows(granted, role):
        raise ConsoleAuthError(f"the {granted!r} role cannot do this (needs {role!r})", status=403)


def allows(role: str | None, needed: str) -> bool:
    return role_allows(role, needed)
