"""Credentials: named secrets stored encrypted at rest.

A credential is ``{name, type, data, description}``; ``data`` (host, user, password, token, ...)
is encrypted with Fernet (AES-128-CBC + HMAC-SHA256) before it reaches the store, so the store,
its backups and ``noetl query`` only ever see ciphertext.

The key is ``NOETL_SECRET_KEY`` when set (a Fernet key, or any passphrase, which is stretched into
one), otherwise a key generated on first use into ``$NOETL_HOME/secret.key`` with mode 0600. Every
process that reads credentials (server, workers, local runs) must share the same key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from noetl.errors import InputError, NotFoundError, StoreError
from noetl.settings import load_settings
from noetl.store.base import CredentialRecord, Store

KEY_FILE_NAME = "secret.key"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")

# --------------------------------------------------------------------------------------------
# The encryption key
# --------------------------------------------------------------------------------------------

_fernets: dict[str, Fernet] = {}


def _fernet_from_secret(secret: str) -> Fernet:
    """A Fernet for ``NOETL_SECRET_KEY``: used as is when it is a Fernet key, else derived."""
    try:
        if len(base64.urlsafe_b64decode(secret.encode("ascii"))) == 32:
            return Fernet(secret.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        pass
    # A passphrase: SHA-256 gives the 32 bytes Fernet needs, deterministic across processes.
    digest = hashlib.sha256(b"noetl-credential-key:" + secret.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def key_file_path(home: Path | None = None) -> Path:
    return (home or load_settings().home) / KEY_FILE_NAME


def _read_or_create_key_file(path: Path) -> bytes:
    """The key in ``path``, creating it (mode 0600, never overwritten) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process may have created it a moment ago and still be writing it.
        key = path.read_bytes().strip()
        if not key:
            raise StoreError(
                f"credential key file {path} is empty; remove it or set NOETL_SECRET_KEY"
            ) from None
        return key
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    os.chmod(path, 0o600)  # the umask may have removed bits but never adds any; be explicit
    return key


def get_fernet() -> Fernet:
    """The Fernet for the current settings (cached per key source)."""
    settings = load_settings()
    if settings.secret_key:
        cache_key = "env:" + settings.secret_key
        if cache_key not in _fernets:
            _fernets[cache_key] = _fernet_from_secret(settings.secret_key)
        return _fernets[cache_key]
    path = key_file_path(settings.home)
    cache_key = "file:" + str(path)
    if cache_key not in _fernets or not path.exists():
        try:
            _fernets[cache_key] = Fernet(_read_or_create_key_file(path))
        except ValueError as exc:
            raise StoreError(f"credential key file {path} does not hold a valid key: {exc}") from exc
    return _fernets[cache_key]


def encrypt_data(data: Mapping[str, Any]) -> bytes:
    return get_fernet().encrypt(json.dumps(dict(data), separators=(",", ":")).encode("utf-8"))


def decrypt_data(blob: bytes, name: str) -> dict[str, Any]:
    try:
        plaintext = get_fernet().decrypt(bytes(blob))
    except InvalidToken:
        raise StoreError(
            f"credential {name!r} cannot be decrypted: it was stored with a different key "
            "(NOETL_SECRET_KEY or $NOETL_HOME/secret.key)"
        ) from None
    data = json.loads(plaintext)
    return data if isinstance(data, dict) else {"value": data}


# --------------------------------------------------------------------------------------------
# Credential documents
# --------------------------------------------------------------------------------------------


def _mapping_or_empty(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_credential_document(doc: Any, *, source: str = "credential") -> dict[str, Any]:
    """Normalise a credential document to ``{name, type, data, description}``.

    Accepted: the plain form ``{name, type, data, description}`` and the catalog form
    ``{kind: Credential, metadata: {name, description}, spec: {type, data}}`` (fields may also sit
    at the top level next to ``kind``).
    """
    if not isinstance(doc, Mapping):
        raise InputError(f"{source}: a credential must be a mapping with name, type and data")
    metadata = _mapping_or_empty(doc.get("metadata"))
    spec = _mapping_or_empty(doc.get("spec"))

    def pick(field: str) -> Any:
        for part in (doc, spec, metadata):
            if part.get(field) is not None:
                return part[field]
        return None

    name = pick("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{source}: credential needs a `name`")
    name = name.strip()
    if not _NAME_PATTERN.match(name):
        raise InputError(f"{source}: credential name {name!r} may only use letters, digits, _ . - /")
    cred_type = pick("type") or "generic"
    if not isinstance(cred_type, str):
        raise InputError(f"{source}: credential {name!r}: `type` must be a string")
    data = pick("data")
    if not isinstance(data, Mapping) or not data:
        raise InputError(f"{source}: credential {name!r} needs a non-empty `data` mapping")
    description = pick("description") or ""
    return {
        "name": name,
        "type": cred_type.strip().lower(),
        "data": dict(data),
        "description": str(description),
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _summary(record: CredentialRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "type": record.type,
        "description": record.description,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


async def register_credential(store: Store, doc: Any) -> dict[str, Any]:
    """Encrypt and store (or replace) a credential; returns its summary (no data)."""
    credential = parse_credential_document(doc)
    existing = await store.get_credential(credential["name"])
    now = _now()
    record = CredentialRecord(
        name=credential["name"],
        type=credential["type"],
        data=encrypt_data(credential["data"]),
        description=credential["description"],
        created_at=existing.created_at if existing and existing.created_at else now,
        updated_at=now,
    )
    await store.put_credential(record)
    return _summary(record)


def load_credential_file(path: str | Path) -> list[dict[str, Any]]:
    """Parse a YAML or JSON file holding one credential, a list of them, or several YAML documents."""
    from noetl.safejson import loads_strict
    from noetl.safeyaml import load_yaml_all

    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{file_path}: credential file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{file_path}: cannot read credential file: {exc}") from exc
    if file_path.suffix.lower() == ".json":
        documents = [loads_strict(text, str(file_path))]
    else:
        documents = [d for d in load_yaml_all(text, str(file_path)) if d is not None]
    flattened: list[Any] = []
    for document in documents:
        flattened.extend(document if isinstance(document, list) else [document])
    if not flattened:
        raise InputError(f"{file_path}: no credential in file")
    return [parse_credential_document(doc, source=str(file_path)) for doc in flattened]


async def register_credential_file(store: Store, path: str | Path) -> list[dict[str, Any]]:
    """Register every credential in a YAML/JSON file; returns their summaries."""
    return [await register_credential(store, doc) for doc in load_credential_file(path)]


async def get_credential(store: Store, name: str) -> dict[str, Any]:
    """The decrypted credential ``{name, type, data, description}``; NotFoundError when unknown."""
    record = await store.get_credential(name)
    if record is None:
        raise NotFoundError(f"credential {name!r} not found")
    return {
        "name": record.name,
        "type": record.type,
        "data": decrypt_data(record.data, record.name),
        "description": record.description,
    }


async def list_credentials(store: Store) -> list[dict[str, Any]]:
    """Every credential's summary, sorted by name; never the data."""
    records = await store.list_credentials()
    return [_summary(record) for record in sorted(records, key=lambda r: r.name)]


async def delete_credential(store: Store, name: str) -> None:
    """Remove a credential; NotFoundError when there is none of that name."""
    if not await store.delete_credential(name):
        raise NotFoundError(f"credential {name!r} not found")


def forget_cached_keys() -> None:
    """Drop cached keys (after changing NOETL_SECRET_KEY or NOETL_HOME in a running process)."""
    _fernets.clear()
