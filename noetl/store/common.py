"""Row encoding shared by the SQL stores (SQLite and PostgreSQL).

JSON columns hold compact JSON text; execution ids stay text here, and each backend turns them into
its own key (SQLite keeps the text, PostgreSQL maps it to a BIGINT with ``db_id``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from noetl.engine.events import Event
from noetl.errors import InputError, StoreError
from noetl.store.base import ExecutionRecord, ResultRecord

if TYPE_CHECKING:
    from noetl.store.records import FireRecord, HookRecord, ScheduleRecord, TriggerRecord

# Compact JSON; NaN/Infinity are rejected because they are not JSON (PostgreSQL jsonb refuses them).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)


def encode_json(value: Any) -> str:
    """``_ENCODER.encode(value)``, calling the C encoder directly: ``JSONEncoder.encode`` and
    ``iterencode`` add two Python calls to each of the several encodes of every event."""
    if _c_make_encoder is None:  # pragma: no cover - an interpreter without the _json accelerator
        return _ENCODER.encode(value)
    # A new encoder per call, as iterencode builds one: its circular-reference markers are per call.
    encode = _c_make_encoder({}, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",",
                             False, False, False)
    return "".join(encode(value, 0))
decode_json = json.loads

UPDATABLE_EXECUTION_FIELDS = ("status", "result", "error", "ended_at")


def utc_bound(instant: str | None) -> str | None:
    """An ISO instant as UTC ISO text (a zoneless one is taken as UTC), for comparing with stored times."""
    if not instant:
        return None
    try:
        moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"expected an ISO date/time, got {instant!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def catalog_id_for(path: str, version: int) -> str:
    """Deterministic catalog id: stable across backends and re-imports, and the API can turn it
    back into ``(path, version)`` with ``rsplit("@", 1)``."""
    return f"{path}@{version}"


def encode_optional(value: Any) -> str | None:
    return None if value is None else encode_json(value)


def decode_optional(text: str | None) -> Any:
    return None if text is None else decode_json(text)


def event_row(execution_id: str, event: Event) -> list[Any]:
    """One event checked and JSON-encoded as ``[execution_id, event_id (0 for now), event_type,
    node_name, status, result, error, meta, created_at]``."""
    if event.execution_id and event.execution_id != execution_id:
        raise StoreError(
            f"event {event.event_type} belongs to execution {event.execution_id}, not {execution_id}"
        )
    if not event.created_at:
        raise StoreError(f"event {event.event_type} of execution {execution_id} has no created_at")
    try:
        result = encode_optional(event.result)
        error = encode_optional(event.error)
        meta = encode_json(event.meta)
    except (TypeError, ValueError) as exc:
        where = f" of step {event.node_name}" if event.node_name else ""
        raise StoreError(
            f"event {event.event_type}{where} of execution {execution_id} is not JSON-serialisable: {exc}"
        ) from exc
    return [execution_id, 0, event.event_type, event.node_name, event.status, result, error, meta,
            event.created_at]  # fmt: skip


def stamp(events: list[Event], execution_id: str, last_id: int) -> list[Event]:
    """Give the events their ids once the transaction has committed (never before)."""
    for offset, event in enumerate(events, start=1):
        event.execution_id = execution_id
        event.event_id = last_id + offset
    return events


def execution_params(record: ExecutionRecord) -> dict[str, Any]:
    """The columns of an execution row, JSON encoded, with the ids as text."""
    try:
        payload = encode_json(record.payload)
        result = encode_optional(record.result)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"execution {record.execution_id} is not JSON-serialisable: {exc}") from exc
    return {
        "execution_id": record.execution_id,
        "path": record.path,
        "status": record.status,
        "parent_execution_id": record.parent_execution_id,
        "playbook": record.playbook,
        "payload": payload,
        "result": result,
        "error": record.error,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "owner": record.owner,
    }


def schedule_params(record: ScheduleRecord) -> dict[str, Any]:
    """The columns of a schedule row (payload as JSON text)."""
    try:
        payload = encode_json(record.payload)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"payload of schedule {record.name} is not JSON-serialisable: {exc}") from exc
    return {"name": record.name, "path": record.path, "cron": record.cron, "timezone": record.timezone,
            "payload": payload, "overlap": record.overlap, "catchup": record.catchup, "enabled": record.enabled,
            "cursor": record.cursor, "source": record.source, "created_at": record.created_at}


def fire_params(fire: FireRecord) -> dict[str, Any]:
    return {"schedule": fire.schedule, "scheduled_for": fire.scheduled_for, "status": fire.status,
            "execution_id": fire.execution_id, "created_at": fire.created_at}


def update_params(execution_id: str, update: dict[str, Any]) -> dict[str, Any]:
    """``set_<field>`` flags and values of an execution update (``result`` JSON encoded), for a
    statement that changes only the flagged fields; the caller adds the execution key."""
    unknown = sorted(set(update) - set(UPDATABLE_EXECUTION_FIELDS))
    if unknown:
        raise StoreError(f"cannot update execution field(s) {', '.join(unknown)}")
    params: dict[str, Any] = {}
    for field in UPDATABLE_EXECUTION_FIELDS:
        params[f"set_{field}"] = field in update
        params[field] = update.get(field)
    if "result" in update:
        try:
            params["result"] = encode_optional(update["result"])
        except (TypeError, ValueError) as exc:
            raise StoreError(f"result of execution {execution_id} is not JSON-serialisable: {exc}") from exc
    return params


def result_params(record: ResultRecord) -> dict[str, Any]:
    """The named parameters of ``insert_result`` (the same names on every SQL backend)."""
    return {"result_id": record.result_id, "execution_id": record.execution_id, "step": record.step,
            "name": record.name, "size": record.size, "sha256": record.sha256, "data": bytes(record.data),
            "created_at": record.created_at, "expires_at": record.expires_at}


def result_from_row(row: Sequence[Any]) -> ResultRecord:
    """A ``get_result`` / ``find_result`` row (timestamps may come back as datetimes or text)."""
    result_id, data, sha256, size, execution_id, step, name, created_at, expires_at = row
    return ResultRecord(result_id=result_id, data=bytes(data), sha256=sha256, size=int(size),
                        execution_id=execution_id, step=step, name=name, created_at=_text_time(created_at),
                        expires_at=_text_time(expires_at) if expires_at is not None else None)


def _text_time(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


HOOK_COLUMNS = ("name", "path", "secret", "token_sha256", "payload_template", "created_at")


def hook_params(record: HookRecord) -> dict[str, Any]:
    """The columns of a hook row (the payload template as JSON text, NULL when there is none)."""
    try:
        template = None if record.payload_template is None else encode_json(record.payload_template)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"payload template of hook {record.name} is not JSON-serialisable: {exc}") from exc
    return {"name": record.name, "path": record.path, "secret": record.secret, "token_sha256": record.token_sha256,
            "payload_template": template, "created_at": record.created_at}


def hook_from_row(row: Sequence[Any]) -> HookRecord:
    from noetl.store.records import HookRecord

    name, path, secret, token_sha256, template, created_at = row
    return HookRecord(name=name, path=path, secret=secret, token_sha256=token_sha256,
                      payload_template=None if template is None else json.loads(template),
                      created_at=str(created_at))


def trigger_params(record: TriggerRecord) -> dict[str, Any]:
    return {"name": record.name, "on_path": record.on_path, "on_status": record.on_status,
            "run_path": record.run_path, "created_at": record.created_at}


def trigger_from_row(row: Sequence[Any]) -> TriggerRecord:
    from noetl.store.records import TriggerRecord

    name, on_path, on_status, run_path, created_at = row
    return TriggerRecord(name=name, on_path=on_path, on_status=on_status, run_path=run_path, created_at=str(created_at))


# A loop's results by reference (noetl.results.storage reads them through the stores) -----------------
LoopReport = tuple[int, str, Any, Any]  # (loop_index, event_type, result, error)
# An execution in one of these has ended: the local stores record no event for it after that.
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
NO_BOUND = 2**62  # an entry whose loop.done is being decided: every report recorded so far counts


def latest_reports(rows: Any) -> list[LoopReport]:
    """Rows ordered by (loop_index, event_id) to one report per index, the latest (a resumed loop's
    kept iterations were reported by an earlier entry; a report recorded twice counts once)."""
    latest: dict[int, LoopReport] = {}
    for index, event_type, result, error in rows:
        latest[int(index)] = (int(index), event_type, result, error)
    return list(latest.values())


# What a loop call's head keeps of its meta: progress (loop_index), the timeline (duration) and the
# lines the event carries itself (logs, unless they were streamed).
HEAD_META = ("loop_index", "duration", "logs_streamed", "logs")


def event_head(event: Event) -> Event:
    """The event as ``Store.list_event_heads`` gives it (the one definition the stores follow)."""
    if event.event_type not in ("call.done", "call.error") or "loop_index" not in event.meta:
        return event
    meta = {key: event.meta[key] for key in HEAD_META if key in event.meta}
    if meta.get("logs_streamed"):
        meta.pop("logs", None)
    return Event(event.execution_id, event.event_type, event.node_name, event.status, None, event.error, meta,
                 event.event_id, event.created_at)
