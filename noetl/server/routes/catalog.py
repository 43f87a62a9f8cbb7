"""Catalog (playbooks by path, with versions) and credentials."""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Any

from fastapi import APIRouter, Body

from noetl.errors import InputError, NotFoundError
from noetl.safeyaml import load_yaml
from noetl.server.auth import requires
from noetl.server.guard import ParsedBodyRoute
from noetl.server.schemas import CatalogListRequest, RegisterRequest, ResourceRequest, SeedRegisterRequest
from noetl.server.state import ServerState, State
from noetl.server.validating import validate_off_loop
from noetl.store.base import CatalogEntry

router = APIRouter(tags=["catalog"], route_class=ParsedBodyRoute)

def decode_content(content: str) -> str:
    """Plain YAML, or YAML sent base64-encoded (what the seeds' clients send)."""
    text = content.strip()
    if text and "\n" not in text and ":" not in text:
        try:
            return base64.b64decode(text, validate=True).decode("utf-8")
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 once decoded
            pass
    return content


async def register_playbook(state: ServerState, content: str) -> dict[str, Any]:
    text = decode_content(content)
    if not text.strip():
        raise InputError("content: the playbook YAML is empty")
    playbook = (await validate_off_loop(text)).require()
    entry = await state.store.register_catalog(path=playbook.path, kind="Playbook", content=text,
                                               name=playbook.metadata.name)
    registered = {"path": entry.path, "version": entry.version, "catalog_id": entry.catalog_id, "kind": entry.kind,
                  "name": entry.name}
    if playbook.schedules:
        from noetl.scheduling.service import register_declared

        registered["schedules"] = await register_declared(state.store, playbook)
    return registered


@router.post("/catalog/register", summary="Register a playbook (a new version of its path)")
@requires("admin")
async def catalog_register(body: RegisterRequest, state: State) -> dict[str, Any]:
    return await register_playbook(state, body.content)


@router.post("/v2/engine/register-playbook", include_in_schema=False)
@requires("admin")
async def seed_register(body: SeedRegisterRequest, state: State) -> dict[str, Any]:
    content = body.playbook_yaml or body.content
    if not content:
        raise InputError("playbook_yaml: required")
    return {"status": "registered", **await register_playbook(state, content)}


@router.post("/catalog/list", summary="Latest version of every catalog path")
@requires("read")
async def catalog_list(state: State, body: Annotated[CatalogListRequest | None, Body()] = None
                       ) -> dict[str, Any]:
    entries = await state.store.list_catalog(kind=body.kind if body else None)
    return {"entries": [entry_summary(e) for e in entries]}


@router.post("/catalog/resource", summary="One catalog entry with its content")
@requires("read")
async def catalog_resource(body: ResourceRequest, state: State) -> dict[str, Any]:
    entry = await find_entry(state, path=body.path, catalog_id=body.catalog_id, version=body.version)
    return {**entry_summary(entry), "content": entry.content}


async def find_entry(state: ServerState, *, path: str | None, catalog_id: str | None,
                     version: int | str | None) -> CatalogEntry:
    if catalog_id and not path:
        path, _, at = catalog_id.rpartition("@")
        version = version or at
        if not path:
            raise InputError(f"catalog_id {catalog_id!r}: expected PATH@VERSION")
    if not path:
        raise InputError("path (or catalog_id) is required")
    if path.startswith("catalog://"):
        path = path[len("catalog://"):]
    number = _version(version)
    entry = await state.store.get_catalog(path, number)
    if entry is None:
        at = f" version {number}" if number else ""
        raise NotFoundError(f"no catalog entry for path {path!r}{at}")
    return entry


def _version(version: int | str | None) -> int | None:
    if version in (None, "", "latest"):
        return None
    try:
        return int(version)  # type: ignore[arg-type]
    except ValueError:
        raise InputError(f"version must be a number, got {version!r}") from None


def entry_summary(entry: CatalogEntry) -> dict[str, Any]:
    return {"path": entry.path, "version": entry.version, "kind": entry.kind, "name": entry.name,
            "catalog_id": entry.catalog_id, "created_at": entry.created_at}


# credentials -------------------------------------------------------------------------------
@router.post("/credentials", summary="Store (or replace) a credential, encrypted at rest")
async def credential_put(body: Annotated[Any, Body()], state: State) -> Any:
    from noetl.credentials import register_credential

    if isinstance(body, str):
        body = await _credential_yaml(body)
    documents = body if isinstance(body, list) else [body]
    summaries = [await register_credential(state.store, document) for document in documents]
    return summaries if isinstance(body, list) else summaries[0]


MAX_CREDENTIAL_YAML_CHARS = 1024 * 1024  # a credential is a few lines; YAML composes at seconds per MB


async def _credential_yaml(text: str) -> Any:
    """A credential sent as YAML text, read on a thread: composing it held the event loop (a 10 MB
    text, most of a minute), and its size is bounded, since a thread cannot be stopped."""
    if len(text) > MAX_CREDENTIAL_YAML_CHARS:
        raise InputError(f"credential: the YAML text has {len(text):,} characters; a credential's may have "
                         f"{MAX_CREDENTIAL_YAML_CHARS:,} at most")
    return await asyncio.to_thread(load_yaml, text, "credential")


@router.get("/credentials", summary="Credentials without their data")
async def credential_list(state: State) -> list[dict[str, Any]]:
    from noetl.credentials import list_credentials

    return await list_credentials(state.store)


@router.get("/credentials/{name}", summary="One credential's summary (never its data)")
async def credential_get(name: str, state: State) -> dict[str, Any]:
    record = await state.store.get_credential(name)
    if record is None:
        raise NotFoundError(f"credential {name!r} not found")
    return {"name": record.name, "type": record.type, "description": record.description,
            "created_at": record.created_at, "updated_at": record.updated_at}


@router.delete("/credentials/{name}", summary="Delete a credential")
async def credential_delete(name: str, state: State) -> dict[str, Any]:
    from noetl.credentials import delete_credential

    await delete_credential(state.store, name)
    return {"name": name, "deleted": True}
