"""Turn a tool's ``auth`` setting into a credential ``{name, type, data}``.

Accepted spellings (spec section 8): a credential name (``auth: pg_local``, possibly rendered from
a template), the v1 reference ``{type: postgres, credential: pg_local}`` (also ``key:``), and an
inline mapping of credential fields (``{type: bearer, token: ...}``, the fields under ``inline:``,
``env: VAR``, a ``{type: header, name, value}``). ``{}`` means no auth. An http request also takes
the unified-auth mapping of several aliases (:func:`resolve_auths`).
"""

from __future__ import annotations

from typing import Any

from noetl.errors import NotFoundError, StoreError, ToolError
from noetl.secrets import env_candidates, resolve_env_secret, secret_strings, sensitive_values
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
            if placement := {k: auth[k] for k in _PLACEMENT_KEYS if k in auth}:
                # ``{type: api_key, key: x, header: X-Service-Key}``: where the playbook puts the key
                credential["data"] = {**(credential.get("data") or {}), **placement}
            return credential
    data = _inline_fields(auth)
    if not data:
        return None
    remember_secrets(call, sensitive_values(data))
    return {
        "name": str(auth.get("name") or "inline") if auth.get("type") != "header" else "inline",
        "type": str(auth.get("type") or "generic"),
        "data": data,
    }


async def resolve_auths(auth: Any, call: ToolCall) -> list[dict[str, Any]]:
    """The credentials ``auth`` designates: several for the unified-auth mapping of aliases, each
    with its own ``type`` (``{api: {type: bearer, key: t}, id: {type: header, name: X-Id, value: v}}``),
    which an http request applies together; else the one of :func:`resolve_auth`, if any."""
    if isinstance(auth, dict) and len(auth) > 1 and all(
            isinstance(alias, dict) and alias.get("type") for alias in auth.values()):
        credentials = [await resolve_auth(alias, call) for alias in auth.values()]
        return [c for c in credentials if c is not None]
    credential = await resolve_auth(auth, call)
    return [] if credential is None else [credential]


def _inline_fields(auth: dict[str, Any]) -> dict[str, Any]:
    """The credential fields of an inline ``auth`` mapping, in every spelling real playbooks use:
    the fields themselves (``{type: bearer, token: ...}``) or under ``inline:``, one header as
    ``{type: header, name: X-Id, value: ...}`` (or several under ``inline:``), and ``env: VAR``:
    the secret named VAR in the environment (as ``{{ secret.VAR }}`` finds it) as the token or key."""
    kind = str(auth.get("type") or "").lower()
    inline = auth.get("inline")
    fields = dict(inline) if isinstance(inline, dict) else {
        k: v for k, v in auth.items() if k not in ("type", "name", "inline")}
    if kind == "header":
        if not isinstance(inline, dict) and auth.get("name") and "value" in auth:
            fields = {str(auth["name"]): auth["value"]}
        return {"headers": fields} if fields else {}
    variable = fields.pop("env", None)
    if isinstance(variable, str) and variable:
        value = resolve_env_secret(variable)
        if value is None:
            raise ToolError(f"auth env {variable!r}: no such secret in the environment "
                            f"(tried {', '.join(env_candidates(variable))})", kind="credential",
                            details={"field": "auth"})
        fields.setdefault(_ENV_FIELD.get(kind, "token"), value)
    return fields


# Where a secret read from the environment goes, by the auth's type.
_ENV_FIELD = {"api_key": "api_key", "apikey": "api_key", "basic": "password"}
# Fields of an `auth` mapping that say where a referenced credential goes in the request.
_PLACEMENT_KEYS = ("header", "header_name", "in", "location", "param", "query_param")
