"""Conversion between store records and PostgreSQL rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from noetl.engine.events import Event
from noetl.errors import InputError, StoreError
from noetl.safejson import check_value
from noetl.store import common
from noetl.store.base import CatalogEntry, CredentialRecord, ExecutionRecord, ExecutionState, ScheduleRecord
from noetl.store.common import event_row
from noetl.store.postgres.ids import db_id, db_key, optional_db_id


def iso(value: datetime | None) -> str | None:
    """timestamptz back to the ISO text the protocol uses, always in UTC."""
    return None if value is None else value.astimezone(UTC).isoformat()


def event_rows(execution_id: str, events: list[Event]) -> list[list[Any]]:
    """Encoded before the transaction starts, so a bad event fails without touching the database.
    Index 1 (event_id) is filled in inside the transaction."""
    number = db_id(execution_id)
    rows = []
    for event in events:
        row = event_row(execution_id, event)  # validates and JSON-encodes
        if any("\\u0000" in text for text in row[5:8] if text is not None):
            _refuse_nul(execution_id, event)
        row[0] = number
        rows.append(row)
    return rows


def _refuse_nul(execution_id: str, event: Event) -> None:
    """jsonb holds no NUL character: the insert would fail, and a worker would retry its report
    until the lease lapsed and the step ran again (a shell step printing one ran three times). Raised
    before the transaction, as for a NaN, the report's step fails with the place named. The text
    ``\\u0000`` (a backslash in a string) also encodes to that, so the values are looked at."""
    where = f"event {event.event_type}" + (f" of step {event.node_name}" if event.node_name else "")
    for name, value in (("result", event.result), ("error", event.error), ("meta", event.meta)):
        try:
            check_value(value, f"{where} of execution {execution_id}: its {name}")
        except InputError as exc:
            raise StoreError(f"{exc} in PostgreSQL") from None


def event_arrays(rows: list[list[Any]]) -> dict[str, list[Any]]:
    """Encoded event rows (ids filled in) as the column arrays of the ``insert_events`` statement."""
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 9
    return {"event_ids": list(columns[1]), "event_types": list(columns[2]), "node_names": list(columns[3]),
            "statuses": list(columns[4]), "results": list(columns[5]), "errors": list(columns[6]),
            "metas": list(columns[7]), "created_ats": list(columns[8])}


def event_from_row(execution_id: str, row: tuple[Any, ...]) -> Event:
    event_type, node_name, status, result, error, meta, event_id, created_at = row
    return Event(execution_id, event_type, node_name, status, result, error, meta, event_id, iso(created_at) or "")


def event_head_from_row(execution_id: str, row: tuple[Any, ...]) -> Event:
    """A ``list_event_heads`` row: a loop call's meta from its columns, as ``common.event_head`` keeps it."""
    event = event_from_row(execution_id, row[:8])
    loop_call, loop_index, duration, streamed, logs = row[8:]
    if loop_call:
        given = {"loop_index": loop_index, "duration": duration, "logs_streamed": streamed, "logs": logs}
        event.meta = {key: value for key, value in given.items() if value is not None}
    return event


def execution_params(record: ExecutionRecord) -> dict[str, Any]:
    """The shared columns, with the ids as BIGINT (and their text where it is not that number)."""
    params = common.execution_params(record)
    params.update(
        execution_id=db_id(record.execution_id),
        execution_key=db_key(record.execution_id),
        parent_execution_id=optional_db_id(record.parent_execution_id),
        parent_key=db_key(record.parent_execution_id),
    )
    return params


def bump_params(execution_id: str, count: int, update: dict[str, Any] | None) -> dict[str, Any]:
    params = common.update_params(execution_id, update or {})
    return {"execution_id": db_id(execution_id), "count": count, **params}


def execution_from_row(row: tuple[Any, ...]) -> ExecutionRecord:
    (execution_id, path, status, parent_execution_id, playbook, payload, result, error,
     started_at, ended_at, owner) = row  # fmt: skip
    return ExecutionRecord(
        execution_id=execution_id, path=path, status=status, parent_execution_id=parent_execution_id,
        playbook=playbook, payload=payload, result=result, error=error,
        started_at=iso(started_at) or "", ended_at=iso(ended_at), owner=owner,
    )


def execution_state_from_row(row: tuple[Any, ...]) -> ExecutionState:
    status, last_event_id, ended_at = row
    return ExecutionState(str(status), int(last_event_id), iso(ended_at))


def catalog_from_row(row: tuple[Any, ...]) -> CatalogEntry:
    path, version, kind, content, catalog_id, name, created_at = row
    return CatalogEntry(path, version, kind, content, catalog_id, name, iso(created_at) or "")


def credential_from_row(row: tuple[Any, ...]) -> CredentialRecord:
    name, type_, data, description, created_at, updated_at = row
    return CredentialRecord(name, type_, bytes(data), description, iso(created_at) or "", iso(updated_at) or "")


def schedule_from_row(row: tuple[Any, ...]) -> ScheduleRecord:
    name, path, cron, timezone, payload, overlap, catchup, enabled, cursor, source, created_at = row
    return ScheduleRecord(name=name, path=path, cron=cron, timezone=timezone, payload=payload, overlap=overlap,
                          catchup=catchup, enabled=enabled, cursor=cursor, source=source, created_at=created_at)
