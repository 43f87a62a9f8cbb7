"""Webhooks of catalog entries: checked hook records, delivery authentication and the payload
an accepted delivery starts its execution with (SPEC section 18, Triggers).

A delivery is authenticated by an HMAC-SHA256 signature of ``timestamp.body`` with the hook's
secret (``X-NoETL-Signature: sha256=<hex>``) or by the hook's token (``Authorization: Bearer`` or
``X-NoETL-Token``). Replays are refused by the timestamp window and by the delivery id, which the
store records once per hook.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from noetl.dsl.render import RenderContext, render_data
from noetl.errors import InputError, NoetlError, NotFoundError, StoreError
from noetl.store.base import HookRecord, Store

SIGNATURE_HEADER = "x-noetl-signature"
TOKEN_HEADER = "x-noetl-token"
DELIVERY_HEADER = "x-noetl-delivery"
TIMESTAMP_HEADER = "x-noetl-timestamp"
TIMESTAMP_WINDOW_SECONDS = 300


class DeliveryRefused(NoetlError):
    """A delivery the hook does not accept: ``status`` is 401 (authentication) or 409 (a replay)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# How a hook's signing secret is stored: encrypted with the credentials' key (it must be read back
# to check signatures, so it cannot be a digest like the token). Older stores hold it in clear.
_SEALED_PREFIX = "noetl-sealed:"


def seal_secret(secret: str) -> str:
    from noetl.credential_keys import encrypt

    return _SEALED_PREFIX + encrypt({"secret": secret}).decode("ascii")


def open_secret(hook: HookRecord) -> str:
    """The hook's signing secret in clear (a secret stored by an older version is read as it is)."""
    if not hook.secret.startswith(_SEALED_PREFIX):
        return hook.secret
    from noetl.credential_keys import decrypt

    try:
        return str(decrypt(hook.secret[len(_SEALED_PREFIX):].encode("ascii"), hook.name).data["secret"])
    except StoreError:
        raise StoreError(f"hook {hook.name!r}: its secret was stored with a different key "
                         "(NOETL_SECRET_KEY or $NOETL_HOME/secret.key)") from None


def token_digest(token: str) -> str:
    """What the store keeps of a hook's token: its SHA-256, so the token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-NoETL-Signature`` value of a delivery (what a sender computes)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def checked_hook(*, name: str, path: str, secret: str | None = None, token: str | None = None,
                 payload_template: Any = None, where: str = "") -> HookRecord:
    """A hook record whose every field is valid; ``where`` prefixes the field names in errors."""
    if not name or not name.strip() or "/" in name:
        raise InputError(f"{where}name: a hook needs a name without '/', got {name!r}")
    if not path or not path.strip():
        raise InputError(f"{where}path: a hook needs the catalog path it starts")
    if bool(secret) == bool(token):
        raise InputError(f"{where}secret/token: give exactly one of a secret (signed deliveries) or a token")
    if payload_template is not None and not isinstance(payload_template, dict | list | str):
        raise InputError(f"{where}payload_template: must be a JSON object, list or string")
    return HookRecord(name=name, path=path.removeprefix("catalog://"), secret=seal_secret(secret) if secret else "",
                      token_sha256=token_digest(token) if token else "", payload_template=payload_template)


def hook_view(hook: HookRecord) -> dict[str, Any]:
    """A hook as the CLI and the API show it: how it authenticates, never the secret itself."""
    return {"name": hook.name, "path": hook.path, "auth": "signature" if hook.secret else "token",
            "payload_template": hook.payload_template, "created_at": hook.created_at}


async def require_hook(store: Store, name: str) -> HookRecord:
    hook = await store.get_hook(name)
    if hook is None:
        raise NotFoundError(f"no hook named {name!r}")
    return hook


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request to ``POST /api/hooks/{name}``: the raw body and the lower-cased headers."""

    body: bytes
    headers: dict[str, str]

    @property
    def delivery_id(self) -> str:
        return self.headers.get(DELIVERY_HEADER, "").strip()


def authenticate(hook: HookRecord, delivery: Delivery, now: datetime) -> None:
    """Raise :class:`DeliveryRefused` (401) unless the delivery is signed or carries the token."""
    if hook.secret:
        _check_timestamp(delivery.headers.get(TIMESTAMP_HEADER, ""), now)
        given = delivery.headers.get(SIGNATURE_HEADER, "")
        expected = signature(open_secret(hook), delivery.headers[TIMESTAMP_HEADER].strip(), delivery.body)
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise DeliveryRefused(f"{SIGNATURE_HEADER}: the signature does not match the body", 401)
        return
    token = delivery.headers.get(TOKEN_HEADER) or _bearer(delivery.headers.get("authorization", ""))
    if not token or not hmac.compare_digest(token_digest(token.strip()), hook.token_sha256):
        raise DeliveryRefused("missing or wrong hook token (Authorization: Bearer or X-NoETL-Token)", 401)


def _bearer(value: str) -> str:
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _check_timestamp(value: str, now: datetime) -> None:
    try:
        sent = float(value.strip())
    except ValueError:
        raise DeliveryRefused(f"{TIMESTAMP_HEADER}: expected Unix seconds, got {value!r}", 401) from None
    if abs(now.timestamp() - sent) > TIMESTAMP_WINDOW_SECONDS:
        raise DeliveryRefused(f"{TIMESTAMP_HEADER}: outside the {TIMESTAMP_WINDOW_SECONDS}-second window", 401)


def execution_payload(hook: HookRecord, delivery: Delivery) -> dict[str, Any]:
    """The payload the delivery's execution starts with: the template rendered over
    ``{body, headers}``, or the JSON body itself when the hook has no template."""
    try:
        body = json.loads(delivery.body) if delivery.body.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"body: not JSON ({exc})") from None
    if hook.payload_template is None:
        if not isinstance(body, dict):
            raise InputError(f"body: must be a JSON object when hook {hook.name!r} has no payload template")
        return body
    context = RenderContext({"body": body, "headers": _visible_headers(delivery.headers)})
    payload = render_data(hook.payload_template, context, where=f"hook {hook.name} payload_template")
    if not isinstance(payload, dict):
        raise InputError(f"hook {hook.name} payload_template: must render to a JSON object")
    return payload


def _visible_headers(headers: dict[str, str]) -> dict[str, str]:
    # The template sees the request's headers except its credentials: the hook's own and HTTP's.
    hidden = {SIGNATURE_HEADER, TOKEN_HEADER, "authorization", "proxy-authorization", "cookie"}
    return {key: value for key, value in headers.items() if key not in hidden}


async def accept(store: Store, name: str, delivery: Delivery, now: datetime) -> tuple[HookRecord, dict[str, Any]]:
    """The hook and the payload of an authentic, well-formed delivery (nothing is recorded yet)."""
    hook = await require_hook(store, name)
    authenticate(hook, delivery, now)
    if hook.secret and not delivery.delivery_id:
        raise InputError(f"{DELIVERY_HEADER}: a signed delivery needs an id (replays are refused by it)")
    return hook, execution_payload(hook, delivery)


async def claim(store: Store, hook: HookRecord, delivery: Delivery) -> None:
    """Record the delivery id, refusing one received before (409). A token delivery without an id
    is not recorded: only the signed ones must carry one."""
    if delivery.delivery_id and not await store.claim_delivery(hook.name, delivery.delivery_id):
        raise DeliveryRefused(f"{DELIVERY_HEADER}: delivery {delivery.delivery_id!r} was received before", 409)
