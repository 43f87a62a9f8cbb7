"""In-memory store: the shipped fake for tests and ephemeral runs.

It behaves like the SQLite store down to the details the conformance suite checks: values are kept
as JSON text (so callers cannot mutate what was stored, and non-JSON values are refused the same
way), event ids are monotonic per execution, and a failed write changes nothing.

Every method runs without an ``await`` in its body, so on one event loop each call is atomic with
respect to other coroutines; no lock is needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from noetl.engine.events import Event
from noetl.errors import ExecutionEnded, NotFoundError, StoreError
from noetl.store.base import (
    CatalogEntry,
    CredentialRecord,
    ExecutionRecord,
    ExecutionState,
    FireRecord,
    HookRecord,
    LogRecord,
    ResultRecord,
    ScheduleRecord,
    TriggerRecord,
)
from noetl.store.common import NO_BOUND, TERMINAL_STATUSES, LoopReport, event_head, latest_reports

_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

UPDATABLE_EXECUTION_FIELDS = frozenset({"status", "result", "error", "ended_at"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(slots=True)
class _StoredEvent:
    event_id: int
    event_type: str
    node_name: str | None
    status: str | None
    result: str | None
    error: str | None
    meta: str
    created_at: str


@dataclass(slots=True)
class _StoredExecution:
    record: ExecutionRecord  # its payload and result fields are unused: the JSON text is below
    payload: str
    result: str | None
    events: list[_StoredEvent] = field(default_factory=list)

    def decoded(self) -> ExecutionRecord:
        return replace(self.record, payload=json.loads(self.payload), result=_decode_optional(self.result))


class MemoryStore:
    """Store protocol held in dicts; everything is lost when the object goes away."""

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._open = False
        self._executions: dict[str, _StoredExecution] = {}
        self._catalog: dict[str, list[CatalogEntry]] = {}  # path -> versions, oldest first
        self._credentials: dict[str, CredentialRecord] = {}
        self._results: dict[str, ResultRecord] = {}  # insertion order = creation order
        self._schedules: dict[str, ScheduleRecord] = {}
        self._fires: dict[tuple[str, str], FireRecord] = {}
        self._hooks: dict[str, HookRecord] = {}
        self._deliveries: set[tuple[str, str]] = set()
        self._triggers: dict[str, TriggerRecord] = {}
        self._trigger_fires: set[tuple[str, str]] = set()
        self._logs: list[LogRecord] = []
        self._last_log_id = 0

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def __aenter__(self) -> MemoryStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("the memory store is not open")

    def _now(self) -> str:
        return self._clock().isoformat()

    # executions and events -------------------------------------------------------------
    async def create_execution(self, record: ExecutionRecord, events: list[Event]) -> list[Event]:
        self._check_open()
        if record.execution_id in self._executions:
            raise StoreError(f"execution {record.execution_id} already exists")
        if not record.started_at:
            record.started_at = self._now()
        payload = _encode(record.payload, f"payload of execution {record.execution_id}")
        result = _encode_optional(record.result, f"result of execution {record.execution_id}")
        stored_events = _encode_events(record.execution_id, events, last_id=0)
        stored_record = replace(record, payload={}, result=None)
        self._executions[record.execution_id] = _StoredExecution(
            stored_record, payload, result, stored_events
        )
        return _stamp(events, record.execution_id, last_id=0)

    async def append_events(
        self, execution_id: str, events: list[Event], *, update: dict[str, Any] | None = None
    ) -> list[Event]:
        self._check_open()
        execution = self._executions.get(execution_id)
        if execution is not None and execution.record.status in TERMINAL_STATUSES:
            status = execution.record.status
            raise ExecutionEnded(execution_id, status)
        return self._append(execution_id, events, update)

    def _append(self, execution_id: str, events: list[Event], update: dict[str, Any] | None) -> list[Event]:
        execution = self._executions.get(execution_id)
        if execution is None:
            raise NotFoundError(f"unknown execution {execution_id}", execution_id=execution_id)
        last_id = execution.events[-1].event_id if execution.events else 0
        # Encode everything before changing anything, so a bad event or update leaves no trace.
        stored_events = _encode_events(execution_id, events, last_id)
        changes = _encode_update(execution_id, update or {})
        execution.events.extend(stored_events)
        for name, value in changes.items():
            setattr(execution if name == "result" else execution.record, name, value)
        return _stamp(events, execution_id, last_id)

    async def list_event_heads(
        self, execution_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[Event]:
        # Decoding is cheap here next to PostgreSQL's: the heads are cut from whole events.
        return [event_head(e) for e in await self.list_events(execution_id, after_id=after_id, limit=limit)]

    async def transition_execution(
        self, execution_id: str, events: list[Event], *, from_statuses: tuple[str, ...],
        update: dict[str, Any], owner: str | None = None, expect_owner: str | None = None,
    ) -> list[Event] | None:
        self._check_open()
        execution = self._executions.get(execution_id)
        if execution is None:
            raise NotFoundError(f"unknown execution {execution_id}", execution_id=execution_id)
        record = execution.record
        if record.status not in from_statuses or (expect_owner is not None and record.owner != expect_owner):
            return None
        stamped = self._append(execution_id, events, update)
        if owner is not None:
            record.owner = owner
        return stamped

    async def list_events(
        self, execution_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[Event]:
        self._check_open()
        execution = self._executions.get(execution_id)
        if execution is None:
            return []
        # Ids are 1..n without gaps, so the first id above after_id sits at index after_id.
        selected = execution.events[max(after_id, 0) :]
        if limit is not None:
            selected = selected[: max(limit, 0)]
        return [_decode_event(execution_id, stored) for stored in selected]

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        self._check_open()
        execution = self._executions.get(execution_id)
        return execution.decoded() if execution else None

    async def get_execution_state(self, execution_id: str) -> ExecutionState | None:
        self._check_open()
        execution = self._executions.get(execution_id)
        if execution is None:
            return None
        record = execution.record
        last_id = execution.events[-1].event_id if execution.events else 0
        return ExecutionState(record.status, last_id, record.ended_at)

    async def list_executions(
        self, *, status: str | None = None, parent_execution_id: str | None = None, path: str | None = None,
        started_since: str | None = None, ended_since: str | None = None, limit: int = 100, offset: int = 0,
    ) -> list[ExecutionRecord]:
        self._check_open()

        def since(value: str | None, bound: str | None) -> bool:
            if bound is None:
                return True
            return value is not None and _instant(value) >= _instant(bound)

        def wanted(record: ExecutionRecord) -> bool:
            return ((status is None or record.status == status)
                    and (parent_execution_id is None or record.parent_execution_id == parent_execution_id)
                    and (not path or path.lower() in (record.path or "").lower())
                    and since(record.started_at, started_since) and since(record.ended_at, ended_since))

        matching = [execution for execution in self._executions.values() if wanted(execution.record)]
        matching.sort(key=lambda stored: (stored.record.started_at, stored.record.execution_id), reverse=True)
        start = max(offset, 0)
        return [execution.decoded() for execution in matching[start:start + max(limit, 0)]]

    # catalog ---------------------------------------------------------------------------
    async def register_catalog(self, *, path: str, kind: str, content: str, name: str = "") -> CatalogEntry:
        self._check_open()
        versions = self._catalog.setdefault(path, [])
        version = len(versions) + 1
        entry = CatalogEntry(
            path=path,
            version=version,
            kind=kind,
            content=content,
            catalog_id=f"{path}@{version}",  # same deterministic id as the SQLite store
            name=name,
            created_at=self._now(),
        )
        versions.append(entry)
        return replace(entry)

    async def get_catalog(self, path: str, version: int | None = None) -> CatalogEntry | None:
        self._check_open()
        versions = self._catalog.get(path, [])
        if not versions:
            return None
        if version is None:
            return replace(versions[-1])
        return replace(versions[version - 1]) if 1 <= version <= len(versions) else None

    async def list_catalog(self, *, kind: str | None = None) -> list[CatalogEntry]:
        self._check_open()
        latest = [versions[-1] for _, versions in sorted(self._catalog.items()) if versions]
        return [replace(entry) for entry in latest if kind is None or entry.kind == kind]

    # schedules ---------------------------------------------------------------------------
    async def put_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        self._check_open()
        _encode(record.payload, f"payload of schedule {record.name}")
        previous = self._schedules.get(record.name)
        stored = replace(record, payload=json.loads(json.dumps(record.payload)),
                         cursor=previous.cursor if previous else record.cursor,
                         created_at=previous.created_at if previous else (record.created_at or self._now()))
        self._schedules[record.name] = stored
        return replace(stored)

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        self._check_open()
        record = self._schedules.get(name)
        return replace(record) if record else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        self._check_open()
        return [replace(self._schedules[name]) for name in sorted(self._schedules)]

    async def update_schedule(self, name: str, *, enabled: bool | None = None, cursor: str | None = None) -> bool:
        self._check_open()
        record = self._schedules.get(name)
        if record is None:
            return False
        if enabled is not None:
            record.enabled = enabled
        if cursor is not None:
            record.cursor = cursor
        return True

    async def delete_schedule(self, name: str) -> bool:
        self._check_open()
        for key in [key for key in self._fires if key[0] == name]:
            del self._fires[key]
        return self._schedules.pop(name, None) is not None

    async def claim_fire(self, fire: FireRecord) -> bool:
        self._check_open()
        key = (fire.schedule, fire.scheduled_for)
        if key in self._fires:
            return False
        if fire.schedule not in self._schedules:
            raise StoreError(f"recording a fire time failed: no schedule {fire.schedule}")
        self._fires[key] = replace(fire, created_at=fire.created_at or self._now())
        return True

    async def start_queued_fire(self, schedule: str, scheduled_for: str, execution_id: str) -> bool:
        self._check_open()
        fire = self._fires.get((schedule, scheduled_for))
        if fire is None or fire.status != "queued":
            return False
        fire.status, fire.execution_id = "started", execution_id
        return True

    async def list_fires(self, schedule: str, *, status: str | None = None, limit: int = 100) -> list[FireRecord]:
        self._check_open()
        fires = [f for (name, _), f in self._fires.items() if name == schedule and status in (None, f.status)]
        fires.sort(key=lambda f: f.scheduled_for, reverse=True)
        return [replace(f) for f in fires[: max(limit, 0)]]

    # hooks -------------------------------------------------------------------------------
    async def put_hook(self, record: HookRecord) -> HookRecord:
        self._check_open()
        _encode(record.payload_template, f"payload template of hook {record.name}")
        previous = self._hooks.get(record.name)
        stored = replace(record, payload_template=json.loads(json.dumps(record.payload_template)),
                         created_at=previous.created_at if previous else (record.created_at or self._now()))
        self._hooks[record.name] = stored
        return replace(stored)

    async def get_hook(self, name: str) -> HookRecord | None:
        self._check_open()
        record = self._hooks.get(name)
        return replace(record) if record else None

    async def list_hooks(self) -> list[HookRecord]:
        self._check_open()
        return [replace(self._hooks[name]) for name in sorted(self._hooks)]

    async def delete_hook(self, name: str) -> bool:
        self._check_open()
        self._deliveries = {key for key in self._deliveries if key[0] != name}
        return self._hooks.pop(name, None) is not None

    async def claim_delivery(self, hook: str, delivery_id: str) -> bool:
        self._check_open()
        if hook not in self._hooks:
            raise StoreError(f"recording a delivery failed: no hook {hook}")
        if (hook, delivery_id) in self._deliveries:
            return False
        self._deliveries.add((hook, delivery_id))
        return True

    # completion triggers -----------------------------------------------------------------
    async def put_trigger(self, record: TriggerRecord) -> TriggerRecord:
        self._check_open()
        previous = self._triggers.get(record.name)
        stored = replace(record, created_at=previous.created_at if previous else (record.created_at or self._now()))
        self._triggers[record.name] = stored
        return replace(stored)

    async def list_triggers(self) -> list[TriggerRecord]:
        self._check_open()
        return [replace(self._triggers[name]) for name in sorted(self._triggers)]

    async def delete_trigger(self, name: str) -> bool:
        self._check_open()
        self._trigger_fires = {key for key in self._trigger_fires if key[0] != name}
        return self._triggers.pop(name, None) is not None

    async def claim_trigger_fire(self, trigger: str, source_execution_id: str, execution_id: str) -> bool:
        self._check_open()
        if trigger not in self._triggers:
            raise StoreError(f"recording a trigger fire failed: no trigger {trigger}")
        if (trigger, source_execution_id) in self._trigger_fires:
            return False
        self._trigger_fires.add((trigger, source_execution_id))
        return True

    async def try_scheduler_lock(self) -> bool:
        return True  # one process owns a memory store

    # credentials -----------------------------------------------------------------------
    async def put_credential(self, record: CredentialRecord) -> None:
        self._check_open()
        now = self._now()
        previous = self._credentials.get(record.name)
        self._credentials[record.name] = CredentialRecord(
            name=record.name,
            type=record.type,
            data=bytes(record.data),
            description=record.description,
            created_at=previous.created_at if previous else now,
            updated_at=now,
        )

    async def get_credential(self, name: str) -> CredentialRecord | None:
        self._check_open()
        record = self._credentials.get(name)
        return replace(record) if record else None

    async def list_credentials(self) -> list[CredentialRecord]:
        self._check_open()
        return [replace(self._credentials[name]) for name in sorted(self._credentials)]

    async def delete_credential(self, name: str) -> bool:
        self._check_open()
        return self._credentials.pop(name, None) is not None

    async def delete_executions(self, *, ended_before: str) -> list[str]:
        self._check_open()
        cutoff = datetime.fromisoformat(ended_before)
        ids = [execution_id for execution_id, stored in self._executions.items()
               if stored.record.status != "running" and stored.record.ended_at
               and datetime.fromisoformat(stored.record.ended_at) < cutoff]
        for execution_id in ids:
            del self._executions[execution_id]
        gone = set(ids)
        self._logs = [log for log in self._logs if log.execution_id not in gone]
        return ids

    # logs streamed while calls run -------------------------------------------------------
    async def append_logs(self, records: list[LogRecord]) -> None:
        self._check_open()
        for record in records:
            self._last_log_id += 1
            self._logs.append(replace(record, log_id=self._last_log_id, created_at=record.created_at or self._now()))

    async def list_logs(self, execution_id: str, *, after_id: int = 0, step: str | None = None,
                        limit: int | None = None) -> list[LogRecord]:
        self._check_open()
        found = [replace(log) for log in self._logs if log.log_id > after_id
                 and log.execution_id == execution_id and (step is None or log.step == step)]
        return found if limit is None else found[:limit]

    # results stored by reference ---------------------------------------------------------
    async def put_result(self, record: ResultRecord) -> None:
        self._check_open()
        if record.result_id in self._results:
            return  # a re-delivered command: the first copy wins, as on the SQL stores
        self._results[record.result_id] = replace(record, data=bytes(record.data),
                                                  created_at=record.created_at or self._now())

    async def get_result(self, result_id: str) -> ResultRecord | None:
        return self.read_result(result_id)

    def read_result(self, result_id: str) -> ResultRecord | None:
        """Synchronous: templates resolve a ``_ref`` while they render (see noetl.results)."""
        self._check_open()
        record = self._results.get(result_id)
        return replace(record) if record else None

    def read_result_slice(self, result_id: str, start: int, length: int) -> bytes | None:
        """Bytes [start, start + length) of a stored result; None when missing."""
        self._check_open()
        record = self._results.get(result_id)
        return bytes(record.data[start:start + max(length, 0)]) if record else None

    def read_loop_reports(self, execution_id: str, step: str, entry: int, start: int, stop: int) -> list[LoopReport]:
        """The latest report of each iteration in [start, stop) of entry ``entry`` of loop ``step``."""
        self._check_open()
        execution = self._executions.get(execution_id)
        events = [_decode_event(execution_id, e) for e in (execution.events if execution else [])
                  if e.node_name == step]
        enters = [e.event_id for e in events if e.event_type == "step.enter" and e.meta.get("entry") == entry]
        ends = [e.event_id for e in events if e.event_type == "loop.done" and enters and e.event_id > enters[-1]]
        before = ends[0] if ends else NO_BOUND
        rows = sorted((e.meta["loop_index"], e.event_id, e.event_type, e.result, e.error) for e in events
                      if e.event_type in ("call.done", "call.error") and isinstance(e.meta.get("loop_index"), int)
                      and start <= e.meta["loop_index"] < stop and e.event_id < before)
        return latest_reports((index, kind, result, error) for index, _, kind, result, error in rows)

    async def get_loop_reports(self, execution_id: str, step: str, entry: int, start: int,
                               stop: int) -> list[LoopReport]:
        return self.read_loop_reports(execution_id, step, entry, start, stop)

    async def find_result(self, name: str) -> ResultRecord | None:
        self._check_open()
        named = [r for r in self._results.values() if r.name == name]
        return replace(max(reversed(named), key=lambda r: r.created_at)) if named else None

    async def delete_results(self, *, created_before: str | None = None, expired_by: str | None = None) -> int:
        self._check_open()
        doomed = [r.result_id for r in self._results.values()
                  if (created_before is not None and r.created_at < created_before)
                  or (expired_by is not None and r.expires_at is not None and r.expires_at <= expired_by)]
        for result_id in doomed:
            del self._results[result_id]
        return len(doomed)


# encoding ---------------------------------------------------------------------------------
def _encode(value: Any, what: str) -> str:
    try:
        return _encode_json(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON-serialisable: {exc}") from exc


def _encode_optional(value: Any, what: str) -> str | None:
    return None if value is None else _encode(value, what)


def _decode_optional(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _encode_events(execution_id: str, events: list[Event], last_id: int) -> list[_StoredEvent]:
    return [
        _encode_event(execution_id, event, event_id)
        for event_id, event in enumerate(events, start=last_id + 1)
    ]


def _encode_event(execution_id: str, event: Event, event_id: int) -> _StoredEvent:
    if event.execution_id and event.execution_id != execution_id:
        raise StoreError(
            f"event {event.event_type} belongs to execution {event.execution_id}, not {execution_id}"
        )
    if not event.created_at:
        raise StoreError(f"event {event.event_type} of execution {execution_id} has no created_at")
    where = f" of step {event.node_name}" if event.node_name else ""
    what = f"event {event.event_type}{where} of execution {execution_id}"
    return _StoredEvent(
        event_id=event_id,
        event_type=event.event_type,
        node_name=event.node_name,
        status=event.status,
        result=_encode_optional(event.result, what),
        error=_encode_optional(event.error, what),
        meta=_encode(event.meta, what),
        created_at=event.created_at,
    )


def _decode_event(execution_id: str, stored: _StoredEvent) -> Event:
    return Event(
        execution_id=execution_id,
        event_type=stored.event_type,
        node_name=stored.node_name,
        status=stored.status,
        result=_decode_optional(stored.result),
        error=_decode_optional(stored.error),
        meta=json.loads(stored.meta),
        event_id=stored.event_id,
        created_at=stored.created_at,
    )


def _encode_update(execution_id: str, update: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(update) - UPDATABLE_EXECUTION_FIELDS)
    if unknown:
        raise StoreError(f"cannot update execution field(s) {', '.join(unknown)}")
    changes = dict(update)
    if "result" in changes:
        changes["result"] = _encode_optional(changes["result"], f"result of execution {execution_id}")
    return changes


def _stamp(events: list[Event], execution_id: str, last_id: int) -> list[Event]:
    for event_id, event in enumerate(events, start=last_id + 1):
        event.execution_id = execution_id
        event.event_id = event_id
    return events
