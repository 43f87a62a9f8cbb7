"""Store records of the catalog, credentials, hooks, triggers and schedules.

Apart from :mod:`noetl.store.base` (which still exports them) because running a playbook builds
none of them: each dataclass compiles its generated methods when its module is imported, and these
six cost about 18 M instructions, a twenty-fifth of a short `noetl run` (bench/results/startup.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class CatalogEntry:
    path: str
    version: int
    kind: str  # "Playbook" | "Credential" | ...
    content: str  # YAML text as registered
    catalog_id: str = ""
    name: str = ""
    created_at: str = ""


@dataclass(slots=True)
class CredentialRecord:
    name: str
    type: str
    data: bytes  # encrypted blob; the store never sees plaintext
    description: str = ""
    created_at: str = ""
    updated_at: str = ""


@dataclass(slots=True)
class HookRecord:
    """A webhook of a catalog entry (see noetl.hooks): ``POST /api/hooks/{name}`` starts ``path``."""

    name: str
    path: str  # the catalog path an accepted delivery starts
    secret: str = ""  # HMAC-SHA256 key of the signature, sealed (noetl.hooks.seal_secret); "" = none accepted
    token_sha256: str = ""  # SHA-256 hex of the hook's token ("" = no token accepted); the token is not kept
    payload_template: Any = None  # rendered over {body, headers}; None: the JSON body is the payload
    created_at: str = ""


@dataclass(slots=True)
class TriggerRecord:
    """"When an execution of ``on_path`` ends ``on_status``, start ``run_path``" (see noetl.triggers)."""

    name: str
    on_path: str
    on_status: str  # completed | failed
    run_path: str
    created_at: str = ""  # only executions that end after it fire the trigger


@dataclass(slots=True)
class ScheduleRecord:
    """A cron schedule of a playbook (see noetl.scheduling)."""

    name: str
    path: str  # what runs: a catalog path (or a playbook file, for a laptop's `noetl scheduler`)
    cron: str
    timezone: str = "UTC"
    payload: dict[str, Any] = field(default_factory=dict)
    overlap: str = "skip"  # skip | queue | allow, while an execution of the schedule still runs
    catchup: str = "latest"  # none | latest | all, for fire times missed while no scheduler ran
    enabled: bool = True
    cursor: str | None = None  # fire times up to this instant (ISO 8601 UTC) have been handled
    source: str = "cli"  # cli | api | playbook (declared under `schedules:`)
    created_at: str = ""


@dataclass(slots=True)
class FireRecord:
    """One fire time of a schedule. (schedule, scheduled_for) is unique: a fire time runs once."""

    schedule: str
    scheduled_for: str  # ISO 8601 UTC
    status: str  # started | skipped | queued
    execution_id: str | None = None
    created_at: str = ""
