"""Conversion between store records and SQLite rows (JSON columns hold compact JSON text)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noetl.engine.events import Event
from noetl.store import common
from noetl.store.base import ExecutionRecord
from noetl.store.common import decode_json, decode_optional, event_row

if TYPE_CHECKING:
    from noetl.store.records import CatalogEntry, ScheduleRecord


def event_rows(execution_id: str, events: list[Event]) -> list[list[Any]]:
    """Encode events before the transaction starts, so a bad event fails without touching the file.
    Index 1 (event_id) is filled in inside the transaction."""
    return [event_row(execution_id, event) for event in events]


def number_rows(rows: list[list[Any]], last_id: int) -> None:
    for offset, row in enumerate(rows, start=1):
        row[1] = last_id + offset


def event_from_row(row: tuple[Any, ...]) -> Event:
    execution_id, event_type, node_name, status, result, error, meta, event_id, created_at = row
    return Event(
        execution_id, event_type, node_name, status, decode_optional(result),
        decode_optional(error), decode_json(meta), event_id, created_at,
    )  # fmt: skip


def event_head_from_row(row: tuple[Any, ...]) -> Event:
    """A ``list_event_heads`` row: a loop call's meta from its columns, as ``common.event_head`` keeps it."""
    loop_call, loop_index, duration, streamed, logs = row[9:]
    if not loop_call:
        return event_from_row(row[:9])
    execution_id, event_type, node_name, status, _, error, _, event_id, created_at = row[:9]
    given = {"loop_index": loop_index, "duration": duration,
             "logs_streamed": None if streamed is None else bool(streamed), "logs": decode_optional(logs)}
    meta = {key: value for key, value in given.items() if value is not None}
    return Event(execution_id, event_type, node_name, status, None, decode_optional(error), meta, event_id,
                 created_at)


def update_params(execution_id: str, update: dict[str, Any]) -> dict[str, Any]:
    """SQLite keys executions by their text id."""
    return {"execution_id": execution_id, **common.update_params(execution_id, update)}


def execution_from_row(row: tuple[Any, ...]) -> ExecutionRecord:
    (execution_id, path, status, parent_execution_id, playbook, payload, result, error,
     started_at, ended_at, owner) = row  # fmt: skip
    return ExecutionRecord(
        execution_id=execution_id,
        path=path,
        status=status,
        parent_execution_id=parent_execution_id,
        playbook=playbook,
        payload=decode_json(payload),
        result=decode_optional(result),
        error=error,
        started_at=started_at,
        ended_at=ended_at,
        owner=owner,
    )


def catalog_params(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "path": entry.path,
        "version": entry.version,
        "kind": entry.kind,
        "name": entry.name,
        "content": entry.content,
        "catalog_id": entry.catalog_id,
        "created_at": entry.created_at,
    }


def schedule_from_row(row: tuple[Any, ...]) -> ScheduleRecord:
    from noetl.store.records import ScheduleRecord  # a run builds no schedule (see that module)

    name, path, cron, timezone, payload, overlap, catchup, enabled, cursor, source, created_at = row
    return ScheduleRecord(name=name, path=path, cron=cron, timezone=timezone, payload=decode_json(payload),
                          overlap=overlap, catchup=catchup, enabled=bool(enabled), cursor=cursor, source=source,
                          created_at=created_at)
