"""API tokens and their roles (SPEC section 20).

Roles are ordered: ``read`` (list, status, events, logs) < ``execute`` (also run, cancel, rerun) <
``admin`` (also catalog changes, credentials, schedules, the SQL endpoint, the worker API).

Tokens come from three places, merged:

- ``NOETL_API_TOKEN``: one admin token (what a single-user deployment sets);
- ``NOETL_API_TOKENS``: ``token=role`` pairs separated by commas, e.g. ``ab12=read,cd34=execute``;
- ``NOETL_API_TOKENS_FILE``: a YAML or JSON file, either a mapping ``{token: role}`` or a list of
  ``{token: ..., role: ..., name: ...}`` (also under a top-level ``tokens:`` key).

Lookups compare the given token with every known token in constant time, so the answer's timing
says nothing about how much of a token was right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noetl.errors import InputError

ROLES = ("read", "execute", "admin")


def role_allows(granted: str | None, needed: str) -> bool:
    return granted in ROLES and ROLES.index(granted) >= ROLES.index(needed)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TokenRegistry:
    """Known tokens, kept as SHA-256 digests (equal length, so comparisons take the same time)."""

    entries: tuple[tuple[bytes, str], ...] = ()

    @classmethod
    def build(cls, *, api_token: str | None = None, tokens: Mapping[str, str] | None = None) -> TokenRegistry:
        pairs = dict(tokens or {})
        if api_token:
            pairs[api_token] = "admin"
        for token, role in pairs.items():
            _check(token, role, "token")
        return cls(tuple((_digest(token), role) for token, role in pairs.items()))

    @property
    def enabled(self) -> bool:
        """False when no token is configured: the API is open (and bound to loopback only)."""
        return bool(self.entries)

    def role_of(self, token: str) -> str | None:
        given = _digest(token)
        found: str | None = None
        for digest, role in self.entries:
            if hmac.compare_digest(given, digest):
                found = role
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _check(token: Any, role: Any, where: str) -> None:
    if not isinstance(token, str) or not token.strip():
        raise InputError(f"{where}: a token must be a non-empty string")
    if role not in ROLES:
        raise InputError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")


def parse_tokens_env(value: str, name: str = "NOETL_API_TOKENS") -> dict[str, str]:
    tokens: dict[str, str] = {}
    for index, item in enumerate(part.strip() for part in value.split(",")):
        if not item:
            continue
        token, sep, role = item.rpartition("=")
        if not sep:
            raise InputError(f"{name}: item {index + 1} is not token=role (roles: {', '.join(ROLES)})")
        _check(token.strip(), role.strip(), f"{name}: item {index + 1}")
        tokens[token.strip()] = role.strip()
    return tokens


def load_tokens_file(path: Path) -> dict[str, str]:
    from noetl.safeyaml import load_yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"NOETL_API_TOKENS_FILE: cannot read {path}: {exc.strerror or exc}") from None
    data = load_yaml(text, str(path))
    if isinstance(data, Mapping) and set(data) == {"tokens"}:
        data = data["tokens"]
    if isinstance(data, Mapping):
        items = [{"token": token, "role": role} for token, role in data.items()]
    elif isinstance(data, list):
        items = data
    else:
        raise InputError(f"{path}: expected a mapping token: role, or a list of {{token, role}}")
    tokens: dict[str, str] = {}
    for index, item in enumerate(items):
        where = f"{path}: entry {index + 1}"
        if not isinstance(item, Mapping):
            raise InputError(f"{where}: expected {{token, role}}")
        _check(item.get("token"), item.get("role"), where)
        tokens[item["token"]] = item["role"]
    return tokens


def registry_from_settings(settings: Any) -> TokenRegistry:
    """The tokens the settings name (``noetl.settings.Settings``)."""
    tokens: dict[str, str] = {}
    if settings.api_tokens_file:
        tokens.update(load_tokens_file(Path(settings.api_tokens_file).expanduser()))
    if settings.api_tokens:
        tokens.update(parse_tokens_env(settings.api_tokens))
    return TokenRegistry.build(api_token=settings.api_token, tokens=tokens)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: TokenRegistry) -> None:
    """Listening beyond this machine without authentication would hand the API to the network."""
    if not is_loopback(host) and not tokens.enabled:
        raise InputError(f"--host {host}: refusing to listen beyond this machine without authentication; "
                         "set NOETL_API_TOKEN (or NOETL_API_TOKENS / NOETL_API_TOKENS_FILE)")
