"""Credentials: named secrets stored encrypted at rest.

A credential is ``{name, type, data, description}``; ``data`` (host, user, password, token, ...)
is encrypted with Fernet (AES-128-CBC + HMAC-SHA256) before it reaches the store, so the store,
its backups and ``noetl query`` only ever see ciphertext. The key and the encryption live in
:mod:`noetl.credential_keys`; every process that reads credentials (server, workers, local runs)
must share the same ``NOETL_SECRET_KEY`` or key file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from noetl.credential_keys import decrypt, encrypt
from noetl.credential_keys import forget_cached_keys as forget_cached_keys  # part of this module's API
from noetl.errors import InputError, NotFoundError
from noetl.store.base import CredentialRecord, Store

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")

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


def _summary(record: CredentialRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "type": record.type,
        "description": record.description,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


async def register_credential(store: Store, doc: Any) -> dict[str, Any]:
    """Encrypt and store (or replace) a credential; returns its summary (no data) as stored: the
    store stamps created_at and updated_at (a time taken here differed from what a listing shows)."""
    credential = parse_credential_document(doc)
    record = CredentialRecord(name=credential["name"], type=credential["type"], data=encrypt(credential["data"]),
                              description=credential["description"])
    await store.put_credential(record)
    stored = await store.get_credential(record.name)
    return _summary(stored or record)


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
    """The decrypted credential ``{name, type, data, description}``; NotFoundError when unknown.

    A credential written by an older version (unsalted passphrase key) is stored again in the
    current form on the way, so stores migrate as they are used.
    """
    record = await store.get_credential(name)
    if record is None:
        raise NotFoundError(f"credential {name!r} not found")
    decrypted = decrypt(record.data, record.name)
    if decrypted.legacy:
        await store.put_credential(replace(record, data=encrypt(decrypted.data)))
    return {
        "name": record.name,
        "type": record.type,
        "data": decrypted.data,
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
