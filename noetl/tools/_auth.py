"""Turn a tool's ``auth`` setting into a credential ``{name, type, data}``.

Accepted spellings (spec section 8): a credential name (``auth: pg_local``, possibly rendered from
a template), the v1 reference ``{type: postgres, credential: pg_local}`` (also ``key:``), and an
inline mapping of credential fields (``{type: bearer, token: ...}``). ``{}`` means no auth.
"""

from __future__ import annotations

from typing import Any

from noetl.errors import NotFoundError, StoreError, ToolError
from noetl.secrets import secret_strings, sensitive_values
from noetl.tools.base import ToolCall

_REFERENCE_KEYS = ("credential", "key", "credential_name", "ref")


async def fetch_credential(name: str, call: ToolCall, field: str = "auth") -> dict[str, Any]:
    """A stored credential through the runtime's services, its secret fields marked for redaction.
    ``field``: the tool field that names it, so an unknown name points at the playbook's line."""
    if call.services is None:
        raise ToolError(f"credential {name!r} cannot be looked up here (no credential store)", kind="config")
    try:
        credential = await call.services.get_credential(name)
    except NotFoundError as exc:
        raise ToolError(str(exc), kind="credential", details={"field": field}) from exc
    except StoreError as exc:
        raise ToolError(f"credential {name!r}: {exc}", kind="credential", retryable=True) from exc
    remember_secrets(call, sensitive_values(credential.get("data") or {}))
    return credential


def remember_secrets(call: ToolCall, values: Any) -> None:
    """Add values (strings, or each string leaf) to the call's secrets so they get redacted."""
    for text in secret_strings(values):
        if text:
            call.secrets.add(text)


async def resolve_auth(auth: Any, call: ToolCall) -> dict[str, Any] | None:
    """The credential ``auth`` designates, or None when there is no auth."""
    if auth is None or auth == "" or auth == {}:
        return None
    if isinstance(auth, str):
        return await fetch_credential(auth.strip(), call)
    if not isinstance(auth, dict):
        raise ToolError("`auth` must be a credential name or a mapping", kind="config")
    if len(auth) == 1 and isinstance(alias := next(iter(auth.values())), dict) and any(
            isinstance(alias.get(key), str) for key in _REFERENCE_KEYS):
        auth = alias  # v1 `auth: {pg: {type: postgres, key: pg_local}}`: one alias naming a credential
    for key in _REFERENCE_KEYS:
        reference = auth.get(key)
        if isinstance(reference, str) and reference:
            credential = dict(await fetch_credential(reference, call))
            # ``{type: ..., credential: x}``: the stored type wins unless it says nothing useful.
            if auth.get("type") and credential.get("type") in (None, "", "generic"):
                credential["type"] = auth["type"]
            return credential
    data = {k: v for k, v in auth.items() if k not in ("type", "name")}
    if not data:
        return None
    remember_secrets(call, sensitive_values(data))
    return {
        "name": str(auth.get("name") or "inline"),
        "type": str(auth.get("type") or "generic"),
        "data": data,
    }
