"""``noetl catalog register FILE|DIR``: every file is read and checked before anything is stored,
so a directory with one bad file registers nothing (and says which file is wrong).

A file is a credential file when its first document (or the first item of a list) looks like a
credential (``kind: Credential``, or ``type`` and ``data`` without ``workflow``); credential files
may hold one credential, a list of them, or several ``---`` documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noetl.errors import InputError, NoetlError


@dataclass(frozen=True, slots=True)
class Prepared:
    file: Path
    text: str
    credentials: list[dict[str, Any]] | None = None  # a credential file's parsed documents
    playbook: Any = None  # a playbook file's checked model


def looks_like_credentials(text: str, file: str = "<file>") -> bool:
    from noetl.safeyaml import load_yaml_all

    try:
        first = next((doc for doc in load_yaml_all(text, file) if doc is not None), None)
    except NoetlError:
        return False  # not readable YAML: the playbook check reports it
    if isinstance(first, list):
        first = first[0] if first else None
    return isinstance(first, dict) and (str(first.get("kind", "")).lower() == "credential"
                                        or ("type" in first and "data" in first and "workflow" not in first))


def prepare(file: Path, *, credentials_only: bool = False) -> Prepared:
    """``file`` read and checked; ``credentials_only``: the user said it is a credential file
    (`register credential -f FILE`), so its problems are told as a credential's."""
    from noetl.credentials import load_credential_file
    from noetl.dsl.parse import load_playbook_text

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: cannot read: {exc}") from None
    if credentials_only and _looks_like_playbook(text, str(file)):
        raise InputError(f"{file}: this is a playbook, not a credential; register it with: "
                         f"noetl catalog register {file}")
    if credentials_only or looks_like_credentials(text, str(file)):
        return Prepared(file, text, credentials=load_credential_file(file))
    return Prepared(file, text, playbook=load_playbook_text(text, str(file), file.resolve().parent).require())


def _looks_like_playbook(text: str, file: str) -> bool:
    from noetl.safeyaml import load_yaml_all

    try:
        first = next((doc for doc in load_yaml_all(text, file) if doc is not None), None)
    except NoetlError:
        return False  # not readable YAML: the credential check reports it
    return isinstance(first, dict) and "workflow" in first


def prepare_all(files: list[Path], *, credentials_only: bool = False) -> list[Prepared]:
    return [prepare(file, credentials_only=credentials_only) for file in files]


async def register_local(store: Any, item: Prepared) -> dict[str, Any]:
    from noetl.credentials import register_credential

    if item.credentials is not None:
        return {"kind": "Credential", "registered": [await register_credential(store, doc) for doc in item.credentials]}
    playbook = item.playbook
    entry = await store.register_catalog(path=playbook.path, kind="Playbook", content=item.text,
                                         name=playbook.metadata.name)
    registered = {"kind": "Playbook", "path": entry.path, "version": entry.version, "catalog_id": entry.catalog_id}
    if playbook.schedules:
        from noetl.scheduling.service import register_declared

        registered["schedules"] = await register_declared(store, playbook)
    return registered


def register_remote(server_url: str, item: Prepared) -> Any:
    from noetl.cli.remote import post_json

    if item.credentials is not None:
        # Shaped like register_local's answer: the same command prints the same document on both runtimes.
        return {"kind": "Credential", "registered": post_json(server_url, "/api/credentials", item.credentials)}
    return post_json(server_url, "/api/catalog/register", {"content": item.text})
