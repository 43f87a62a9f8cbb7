"""Schedule management shared by the CLI and the API: checked records, next fire times."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from noetl.dsl.model import Playbook
from noetl.errors import InputError, NotFoundError
from noetl.scheduling.cron import (
    CATCHUP_POLICIES,
    OVERLAP_POLICIES,
    check_choice,
    check_cron,
    check_zone,
    fire_times,
    parse_instant,
    utc_text,
)
from noetl.scheduling.scheduler import Fired
from noetl.store.base import ScheduleRecord, Store


def checked_schedule(*, name: str, path: str, cron: str, timezone: str = "UTC", payload: Any = None,
                     overlap: str = "skip", catchup: str = "latest", enabled: bool = True, source: str = "cli",
                     where: str | None = None) -> ScheduleRecord:
    """A schedule record whose every field is valid. Errors name the command line's options when
    ``where`` is None, else the field names prefixed with ``where`` ("" for the API's body fields,
    ``schedules[0].`` for a playbook's)."""
    def field(option: str, key: str) -> str:
        return option if where is None else f"{where}{key}"

    if not name or not str(name).strip():
        raise InputError(f"{field('--name', 'name')}: a schedule needs a name")
    if payload is not None and not isinstance(payload, dict):
        raise InputError(f"{field('--payload', 'payload')}: must be a JSON object, got {type(payload).__name__}")
    check_zone(timezone, field("--tz", "timezone"))
    return ScheduleRecord(
        name=str(name), path=str(path), cron=check_cron(cron, field("--cron", "cron")),
        timezone=str(timezone), payload=dict(payload or {}),
        overlap=check_choice(overlap, OVERLAP_POLICIES, field("--overlap", "overlap")),
        catchup=check_choice(catchup, CATCHUP_POLICIES, field("--catchup", "catchup")),
        enabled=bool(enabled), source=source)


def next_fire(schedule: ScheduleRecord, now: datetime | None = None) -> str | None:
    start = now or datetime.now(UTC)
    if schedule.cursor:
        start = max(start, parse_instant(schedule.cursor))
    found = fire_times(schedule.cron, schedule.timezone, after=start, until=datetime.max.replace(tzinfo=UTC),
                       limit=1)
    return utc_text(found[0]) if found else None


def schedule_view(schedule: ScheduleRecord, now: datetime | None = None) -> dict[str, Any]:
    """A schedule as the CLI (--json) and the API show it."""
    return {**asdict(schedule), "next_fire": next_fire(schedule, now) if schedule.enabled else None}


def fired_view(fired: Fired) -> dict[str, Any]:
    """A "run now" as the CLI and the API answer it."""
    return {"schedule": fired.schedule, "scheduled_for": fired.scheduled_for, "execution_id": fired.execution_id,
            "status": fired.status}


async def require_schedule(store: Store, name: str) -> ScheduleRecord:
    schedule = await store.get_schedule(name)
    if schedule is None:
        raise NotFoundError(f"schedule {name!r} not found")
    return schedule


async def set_enabled(store: Store, name: str, enabled: bool) -> ScheduleRecord:
    await require_schedule(store, name)
    await store.update_schedule(name, enabled=enabled)
    return await require_schedule(store, name)


async def delete(store: Store, name: str) -> None:
    if not await store.delete_schedule(name):
        raise NotFoundError(f"schedule {name!r} not found")


def backfill_range(start: str, end: str) -> tuple[datetime, datetime]:
    first, last = parse_instant(start, "--from"), parse_instant(end, "--to")
    if last < first:
        raise InputError(f"--to {end} is before --from {start}")
    return first, last


def declared_schedules(playbook: Playbook) -> list[ScheduleRecord]:
    """The `schedules:` of a playbook as records for its catalog path (checked by validation)."""
    records = []
    for index, entry in enumerate(playbook.schedules):
        default = playbook.path if index == 0 else f"{playbook.path}#{index + 1}"
        records.append(checked_schedule(
            name=str(entry.get("name") or default), path=playbook.path, cron=str(entry.get("cron")),
            timezone=str(entry.get("timezone") or entry.get("tz") or "UTC"), payload=entry.get("payload"),
            overlap=str(entry.get("overlap", "skip")), catchup=str(entry.get("catchup", "latest")),
            enabled=bool(entry.get("enabled", True)), source="playbook", where=f"schedules[{index}]."))
    return records


async def register_declared(store: Store, playbook: Playbook) -> list[str]:
    """Store the playbook's declared schedules (on catalog registration); return their names."""
    return [(await store.put_schedule(record)).name for record in declared_schedules(playbook)]
