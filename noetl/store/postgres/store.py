"""The PostgreSQL store of the distributed runtime (psycopg 3, async, with a connection pool).

Schema ``noetl``; migrations are applied by ``noetl db init``, on server start and by ``open()``
(each is idempotent and serialised with an advisory lock, so many processes can start at once).

Connections are in autocommit mode: a read is one round trip, and every write runs inside an
explicit ``conn.transaction()``. A connection broken by a PostgreSQL restart is dropped by the pool
when it is returned, so the next call gets a fresh one; the failed call raises StoreError and the
caller (worker loop, API request) decides whether to retry.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql
from psycopg_pool import AsyncConnectionPool

from noetl.engine.events import Event
from noetl.errors import ConnectionRefused, ExecutionEnded, NoetlError, NotFoundError, StoreError
from noetl.secrets import redact_connection_secrets
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
from noetl.store.common import (
    NO_BOUND,
    TERMINAL_STATUSES,
    LoopReport,
    catalog_id_for,
    fire_params,
    hook_from_row,
    hook_params,
    latest_reports,
    result_from_row,
    result_params,
    schedule_params,
    stamp,
    trigger_from_row,
    trigger_params,
    utc_bound,
)
from noetl.store.postgres.ids import db_id, optional_db_id
from noetl.store.postgres.rows import (
    bump_params,
    catalog_from_row,
    credential_from_row,
    event_arrays,
    event_from_row,
    event_head_from_row,
    event_rows,
    execution_from_row,
    execution_params,
    execution_state_from_row,
    iso,
    schedule_from_row,
)
from noetl.store.postgres.sql import migrations, queries

T = TypeVar("T")
Clock = Callable[[], datetime]
Connection = psycopg.AsyncConnection[Any]

MIGRATION_LOCK_KEY = 0x6E6F65746C  # "noetl": one migration run at a time across processes
EVENT_PAGE = 2000  # events read per query when folding a whole log
# Bytes of a stored result read per query when it is sent on (each slice of a compressed value
# decompresses it from its start: fewer, larger slices cost less in all).
RESULT_SLICE_BYTES = 4 * 1024 * 1024
_INT4_MAX = 2**31 - 1  # what an integer parameter of a PostgreSQL function takes
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # COPY BINARY: signature, flags, extension


# The advisory lock key of the one active scheduler (any constant unique to NoETL in the database).
SCHEDULER_LOCK_KEY = 0x4E4F45544C53  # "NOETLS"


def utc_now() -> datetime:
    return datetime.now(UTC)


class PostgresStore:
    """Store protocol on PostgreSQL. ``await store.open()`` creates the pool and migrates."""

    def __init__(self, url: str, *, clock: Clock = utc_now, min_size: int = 1, max_size: int = 10,
                 migrate: bool = True, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.clock = clock
        self._min_size = min_size
        self._max_size = max_size
        self._migrate_on_open = migrate
        self._connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[Any] | None = None
        self._scheduler_conn: Connection | None = None  # holds the scheduler advisory lock
        self.q = queries()
        self.event_page = EVENT_PAGE
        # A plain connection for the synchronous result reads of template rendering (see read_result).
        self._sync_conn: psycopg.Connection[Any] | None = None
        self._sync_lock = threading.Lock()

    # lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        await self._probe_connection()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.url, min_size=self._min_size, max_size=self._max_size, open=False,
            kwargs={"autocommit": True}, timeout=self._connect_timeout, name="noetl",
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout)
        except Exception as exc:
            await pool.close()
            raise StoreError(f"cannot connect to PostgreSQL at {redact_url(self.url)}: {exc}") from exc
        self._pool = pool
        if self._migrate_on_open:
            try:
                await self.migrate()
            except BaseException:
                await self.close()
                raise

    async def _probe_connection(self) -> None:
        """One connection before the pool's: a database that refuses it (down, wrong password, no
        such database) is one line with PostgreSQL's reason, at once. The pool would retry for the
        whole connect timeout, log a warning per attempt and then say only that it timed out."""
        try:
            probe = await psycopg.AsyncConnection.connect(
                self.url, connect_timeout=max(1, round(self._connect_timeout)))
        except psycopg.Error as exc:
            error_type = ConnectionRefused if refuses_for_good(exc) else StoreError
            raise error_type(f"cannot connect to PostgreSQL at {redact_url(self.url)}: "
                             f"{_connection_failure(exc)}") from exc
        await probe.close()

    async def close(self) -> None:
        with self._sync_lock:
            sync_conn, self._sync_conn = self._sync_conn, None
        if sync_conn is not None:
            sync_conn.close()
        scheduler_conn, self._scheduler_conn = self._scheduler_conn, None
        if scheduler_conn is not None:
            await scheduler_conn.close()  # releases the scheduler lock
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied (empty when up to date)."""

        async def work(conn: Connection) -> list[int]:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            await _act_as_noetl_owner(conn)
            await conn.execute("CREATE SCHEMA IF NOT EXISTS noetl")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS noetl.schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
            cursor = await conn.execute("SELECT version FROM noetl.schema_migrations")
            applied = {row[0] for row in await cursor.fetchall()}
            done = []
            for migration in migrations():
                if migration.version in applied:
                    continue
                await conn.execute(migration.script.encode("utf-8"))
                await conn.execute(
                    "INSERT INTO noetl.schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, self.clock()),
                )
                done.append(migration.version)
            return done

        return await self.write("migrating the database", work)

    # plumbing --------------------------------------------------------------------------
    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is not open")
        async with pool.connection() as conn:
            yield conn

    async def write(self, action: str, work: Callable[[Connection], Awaitable[T]], *, pipeline: bool = False,
                    if_duplicate: str | None = None) -> T:
        """Run ``work`` in one transaction; driver errors become StoreError naming ``action``.

        With ``pipeline``, statements are sent without waiting for each result (psycopg pipeline mode):
        BEGIN, the writes and COMMIT share round trips, and a fetch syncs only when it needs a result
        (see _pipelined_transaction). ``if_duplicate``: the error when the write breaks a unique
        constraint (in a pipeline the violation surfaces at the sync, not where its statement was sent).
        """
        with _store_errors(action, if_duplicate):
            async with self.connection() as conn:
                if not pipeline:
                    async with conn.transaction():
                        return await work(conn)
                return await _pipelined_transaction(conn, work)

    async def read(self, action: str, query: str, params: Any, *, binary: bool = False) -> list[Any]:
        """One statement in autocommit mode (``binary``: results in binary format). Retried once on a
        broken connection: after a PostgreSQL restart every pooled connection is dead, and the retry
        gets a fresh one."""
        for attempt in (1, 2):
            try:
                async with self.connection() as conn:
                    cursor = await conn.execute(self.q[query], params, binary=binary)
                    return await cursor.fetchall()
            except psycopg.OperationalError as exc:
                if attempt == 1 and _is_disconnect(exc):
                    continue
                raise StoreError(f"{action} failed: {_first_line(exc)}") from exc
            except psycopg.Error as exc:
                raise StoreError(f"{action} failed: {_first_line(exc)}") from exc
            except Exception as exc:
                if type(exc).__module__.startswith("psycopg_pool"):
                    raise StoreError(f"{action} failed: {exc}") from exc
                raise
        raise AssertionError("unreachable")

    async def read_write(self, action: str, query: str, params: Any) -> int:
        """One data-changing statement in autocommit mode; return the affected row count."""
        try:
            async with self.connection() as conn:
                cursor = await conn.execute(self.q[query], params)
                return cursor.rowcount
        except psycopg.Error as exc:
            raise StoreError(f"{action} failed: {_first_line(exc)}") from exc

    def now(self) -> str:
        return self.clock().isoformat()

    # executions and events -------------------------------------------------------------
    async def create_execution(self, record: ExecutionRecord, events: list[Event]) -> list[Event]:
        if not record.started_at:
            record.started_at = self.now()
        await self.start_execution(record.execution_id, execution_params(record),
                                   event_rows(record.execution_id, events))
        return stamp(events, record.execution_id, 0)

    async def start_execution(self, execution_id: str, params: dict[str, Any], rows: list[list[Any]],
                              commands: dict[str, Any] | None = None) -> None:
        """A new execution's row, first events and first commands (``commands``: their column arrays,
        creation time and NOTIFY channel; none by default) in one statement on its own: one round trip
        and one COMMIT. A duplicate execution id is refused as ``execution X already exists``."""
        for offset, row in enumerate(rows, start=1):
            row[1] = offset
        with _store_errors(f"starting execution {execution_id}", f"execution {execution_id} already exists"):
            async with self.connection() as conn:
                await conn.execute(self.q["start_execution"], {
                    **params, "last_event_id": len(rows), **event_arrays(rows), **(commands or _NO_COMMANDS)})

    async def insert_events(self, conn: Connection, number: int, rows: list[list[Any]]) -> None:
        """Insert encoded event rows (ids filled in) of the execution ``number`` in one statement."""
        if rows:
            await conn.execute(self.q["insert_events"], {"execution_id": number, **event_arrays(rows)})

    async def append_events(
        self, execution_id: str, events: list[Event], *, update: dict[str, Any] | None = None
    ) -> list[Event]:
        rows = event_rows(execution_id, events)
        params = bump_params(execution_id, len(rows), update)

        async def work(conn: Connection) -> int:
            cursor = await conn.execute(self.q["lock_execution_state"], {"execution_id": db_id(execution_id)})
            found = await cursor.fetchone()
            if found is None:
                raise NotFoundError(f"unknown execution {execution_id}", execution_id=execution_id)
            if found[0] in TERMINAL_STATUSES:  # ended (cancelled by another process): record nothing after
                raise ExecutionEnded(execution_id, str(found[0]))
            return await self.append_in_transaction(conn, execution_id, rows, params)

        last_id = await self.write(f"appending events to execution {execution_id}", work)
        return stamp(events, execution_id, last_id)

    async def append_in_transaction(self, conn: Connection, execution_id: str, rows: list[list[Any]],
                                    params: dict[str, Any]) -> int:
        """Reserve ids (locking the execution row), insert the events; return the id before them."""
        cursor = await conn.execute(self.q["bump_execution"], params)
        found = await cursor.fetchone()
        if found is None:
            raise NotFoundError(f"unknown execution {execution_id}", execution_id=execution_id)
        last_id = int(found[0])
        for offset, row in enumerate(rows, start=1):
            row[1] = last_id + offset
        await self.insert_events(conn, db_id(execution_id), rows)
        return last_id

    async def transition_execution(
        self, execution_id: str, events: list[Event], *, from_statuses: tuple[str, ...],
        update: dict[str, Any], owner: str | None = None, expect_owner: str | None = None,
    ) -> list[Event] | None:
        rows = event_rows(execution_id, events)
        params = bump_params(execution_id, len(rows), update)
        key = {"execution_id": db_id(execution_id)}

        async def work(conn: Connection) -> int | None:
            cursor = await conn.execute(self.q["lock_execution_state"], key)
            found = await cursor.fetchone()
            if found is None:
                raise NotFoundError(f"unknown execution {execution_id}", execution_id=execution_id)
            status, current_owner = found
            if status not in from_statuses or (expect_owner is not None and current_owner != expect_owner):
                return None
            last_id = await self.append_in_transaction(conn, execution_id, rows, params)
            if owner is not None:
                await conn.execute(self.q["set_execution_owner"], {**key, "owner": owner})
            return last_id

        last_id = await self.write(f"changing the status of execution {execution_id}", work)
        return None if last_id is None else stamp(events, execution_id, last_id)

    async def list_events(
        self, execution_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[Event]:
        params = {"execution_id": db_id(execution_id), "after_id": after_id, "limit": limit}
        rows = await self.read(f"listing events of execution {execution_id}", "list_events", params)
        return [event_from_row(execution_id, row) for row in rows]

    async def list_event_heads(
        self, execution_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[Event]:
        params = {"execution_id": db_id(execution_id), "after_id": after_id, "limit": limit}
        rows = await self.read(f"listing events of execution {execution_id}", "list_event_heads", params)
        return [event_head_from_row(execution_id, row) for row in rows]

    async def iter_events(self, execution_id: str, *, after_id: int = 0, types: tuple[str, ...] | None = None,
                          or_warned: bool = False) -> AsyncGenerator[list[Event]]:
        """The events after ``after_id`` (only of ``types`` when given, and with ``or_warned`` any
        other event that carries template warnings), ``event_page`` at a time: a long log (a
        100,000-item loop) is never all in memory at once."""
        page = self.event_page
        while True:
            if types is None:
                events = await self.list_events(execution_id, after_id=after_id, limit=page)
            else:
                params = {"execution_id": db_id(execution_id), "after_id": after_id, "limit": page,
                          "types": list(types)}
                query = "list_events_of_types_or_warned" if or_warned else "list_events_of_types"
                rows = await self.read(f"listing events of execution {execution_id}", query, params)
                events = [event_from_row(execution_id, row) for row in rows]
            if events:
                yield events
            if len(events) < page:
                return
            after_id = events[-1].event_id

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        rows = await self.read(f"reading execution {execution_id}", "get_execution",
                               {"execution_id": db_id(execution_id)})
        return execution_from_row(rows[0]) if rows else None

    async def get_execution_state(self, execution_id: str) -> ExecutionState | None:
        """The row's status and last event id, without the playbook, payload and result: what a
        watcher polls for."""
        rows = await self.read(f"reading the state of execution {execution_id}", "get_execution_state",
                               {"execution_id": db_id(execution_id)})
        return execution_state_from_row(rows[0]) if rows else None

    async def list_executions(
        self, *, status: str | None = None, parent_execution_id: str | None = None, path: str | None = None,
        started_since: str | None = None, ended_since: str | None = None, limit: int = 100, offset: int = 0,
    ) -> list[ExecutionRecord]:
        params = {"status": status, "parent_execution_id": optional_db_id(parent_execution_id), "path": path or None,
                  "started_since": utc_bound(started_since), "ended_since": utc_bound(ended_since),
                  "limit": max(limit, 0), "offset": max(offset, 0)}
        rows = await self.read("listing executions", "list_executions", params)
        return [execution_from_row(row) for row in rows]

    # catalog ---------------------------------------------------------------------------
    async def register_catalog(self, *, path: str, kind: str, content: str, name: str = "") -> CatalogEntry:
        async def work(conn: Connection) -> CatalogEntry:
            await conn.execute(self.q["lock_catalog_path"], {"path": path})
            cursor = await conn.execute(self.q["max_catalog_version"], {"path": path})
            row = await cursor.fetchone()
            version = int(row[0] if row else 0) + 1
            entry = CatalogEntry(path=path, version=version, kind=kind, content=content,
                                 catalog_id=catalog_id_for(path, version), name=name, created_at=self.now())
            await conn.execute(self.q["insert_catalog"], {
                "path": path, "version": version, "kind": kind, "name": name, "content": content,
                "catalog_id": entry.catalog_id, "created_at": entry.created_at,
            })
            return entry

        return await self.write(f"registering {path} in the catalog", work)

    async def get_catalog(self, path: str, version: int | None = None) -> CatalogEntry | None:
        if version is None:
            rows = await self.read(f"reading catalog entry {path}", "get_catalog_latest", {"path": path})
        else:
            rows = await self.read(f"reading catalog entry {path}", "get_catalog_version",
                                   {"path": path, "version": version})
        return catalog_from_row(rows[0]) if rows else None

    async def list_catalog(self, *, kind: str | None = None) -> list[CatalogEntry]:
        rows = await self.read("listing the catalog", "list_catalog_latest", {})
        entries = [catalog_from_row(row) for row in rows]
        return [e for e in entries if kind is None or e.kind == kind]

    # credentials -----------------------------------------------------------------------
    async def put_credential(self, record: CredentialRecord) -> None:
        params = {"name": record.name, "type": record.type, "data": bytes(record.data),
                  "description": record.description, "now": self.now()}

        async def work(conn: Connection) -> None:
            await conn.execute(self.q["upsert_credential"], params)

        await self.write(f"storing credential {record.name}", work)

    async def get_credential(self, name: str) -> CredentialRecord | None:
        rows = await self.read(f"reading credential {name}", "get_credential", {"name": name})
        return credential_from_row(rows[0]) if rows else None

    # schedules ---------------------------------------------------------------------------
    async def put_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        params = schedule_params(record)
        params["created_at"] = params["created_at"] or self.now()
        await self.read_write(f"storing schedule {record.name}", "upsert_schedule", params)
        stored = await self.get_schedule(record.name)
        assert stored is not None
        return stored

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        rows = await self.read(f"reading schedule {name}", "get_schedule", {"name": name})
        return schedule_from_row(rows[0]) if rows else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [schedule_from_row(row) for row in await self.read("listing schedules", "list_schedules", {})]

    async def update_schedule(self, name: str, *, enabled: bool | None = None, cursor: str | None = None) -> bool:
        params = {"name": name, "set_enabled": enabled is not None, "enabled": enabled,
                  "set_cursor": cursor is not None, "cursor": cursor}
        return await self.read_write(f"changing schedule {name}", "update_schedule", params) > 0

    async def delete_schedule(self, name: str) -> bool:
        return await self.read_write(f"deleting schedule {name}", "delete_schedule", {"name": name}) > 0

    async def claim_fire(self, fire: FireRecord) -> bool:
        params = fire_params(fire)
        params["created_at"] = params["created_at"] or self.now()
        return await self.read_write(f"recording a fire time of schedule {fire.schedule}", "claim_fire", params) > 0

    async def start_queued_fire(self, schedule: str, scheduled_for: str, execution_id: str) -> bool:
        params = {"schedule": schedule, "scheduled_for": scheduled_for, "execution_id": execution_id}
        return await self.read_write(f"starting a queued fire time of schedule {schedule}", "start_queued_fire",
                                     params) > 0

    async def list_fires(self, schedule: str, *, status: str | None = None, limit: int = 100) -> list[FireRecord]:
        params = {"schedule": schedule, "status": status, "limit": limit}
        rows = await self.read(f"listing fire times of schedule {schedule}", "list_fires", params)
        return [FireRecord(*row) for row in rows]

    # hooks -------------------------------------------------------------------------------
    async def put_hook(self, record: HookRecord) -> HookRecord:
        params = hook_params(record)
        params["created_at"] = params["created_at"] or self.now()
        await self.read_write(f"storing hook {record.name}", "upsert_hook", params)
        stored = await self.get_hook(record.name)
        assert stored is not None
        return stored

    async def get_hook(self, name: str) -> HookRecord | None:
        rows = await self.read(f"reading hook {name}", "get_hook", {"name": name})
        return hook_from_row(rows[0]) if rows else None

    async def list_hooks(self) -> list[HookRecord]:
        return [hook_from_row(row) for row in await self.read("listing hooks", "list_hooks", {})]

    async def delete_hook(self, name: str) -> bool:
        return await self.read_write(f"deleting hook {name}", "delete_hook", {"name": name}) > 0

    async def claim_delivery(self, hook: str, delivery_id: str) -> bool:
        params = {"hook": hook, "delivery_id": delivery_id, "created_at": self.now()}
        return await self.read_write(f"recording a delivery of hook {hook}", "claim_delivery", params) > 0

    # completion triggers -----------------------------------------------------------------
    async def put_trigger(self, record: TriggerRecord) -> TriggerRecord:
        params = trigger_params(record)
        params["created_at"] = params["created_at"] or self.now()
        await self.read_write(f"storing trigger {record.name}", "upsert_trigger", params)
        return next(t for t in await self.list_triggers() if t.name == record.name)

    async def list_triggers(self) -> list[TriggerRecord]:
        return [trigger_from_row(row) for row in await self.read("listing triggers", "list_triggers", {})]

    async def delete_trigger(self, name: str) -> bool:
        return await self.read_write(f"deleting trigger {name}", "delete_trigger", {"name": name}) > 0

    async def claim_trigger_fire(self, trigger: str, source_execution_id: str, execution_id: str) -> bool:
        params = {"trigger": trigger, "source": source_execution_id, "execution_id": execution_id,
                  "created_at": self.now()}
        return await self.read_write(f"recording a fire of trigger {trigger}", "claim_trigger_fire", params) > 0

    async def try_scheduler_lock(self) -> bool:
        """One active scheduler across servers: a session advisory lock on a connection of its own,
        held until ``close`` (or until the process dies, when PostgreSQL drops the session)."""
        if self._scheduler_conn is not None:
            return True
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            cursor = await conn.execute(self.q["try_scheduler_lock"], {"key": SCHEDULER_LOCK_KEY})
            row = await cursor.fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"taking the scheduler lock failed: {type(exc).__name__}") from exc
        if row is None or not row[0]:
            await conn.close()
            return False
        self._scheduler_conn = conn
        return True

    async def list_credentials(self) -> list[CredentialRecord]:
        rows = await self.read("listing credentials", "list_credentials", {})
        return [credential_from_row(row) for row in rows]

    async def delete_credential(self, name: str) -> bool:
        async def work(conn: Connection) -> bool:
            cursor = await conn.execute(self.q["delete_credential"], {"name": name})
            return cursor.rowcount > 0

        return await self.write(f"deleting credential {name}", work)

    async def delete_executions(self, *, ended_before: str) -> list[str]:
        async def work(conn: Connection) -> list[str]:
            cursor = await conn.execute(self.q["delete_finished_executions"], {"ended_before": ended_before})
            return [str(row[0]) for row in await cursor.fetchall()]

        return await self.write("deleting old executions", work)

    # logs streamed while calls run -------------------------------------------------------
    async def append_logs(self, records: list[LogRecord]) -> None:
        now = self.now()
        rows = [{"execution_id": db_id(r.execution_id), "step": r.step, "loop_index": r.loop_index,
                 "stream": r.stream, "line": r.line, "created_at": r.created_at or now} for r in records]
        if not rows:
            return

        async def work(conn: Connection) -> None:
            async with conn.cursor() as cursor:
                await cursor.executemany(self.q["insert_log"], rows)

        await self.write("storing logs", work)

    async def list_logs(self, execution_id: str, *, after_id: int = 0, step: str | None = None,
                        limit: int | None = None) -> list[LogRecord]:
        params = {"execution_id": db_id(execution_id), "after_id": after_id, "step": step, "limit": limit}
        rows = await self.read(f"listing logs of execution {execution_id}", "list_logs", params)
        return [LogRecord(execution_id=execution_id, step=row[1], loop_index=row[2], stream=row[3], line=row[4],
                          created_at=iso(row[5]) or "", log_id=row[0]) for row in rows]

    # results stored by reference ---------------------------------------------------------
    async def put_result(self, record: ResultRecord) -> None:
        if not record.created_at:
            record.created_at = self.now()
        await self.read_write(f"storing result {record.result_id}", "insert_result", result_params(record))

    async def put_result_parts(self, record: ResultRecord, parts: Sequence[bytes]) -> None:
        """:meth:`put_result` of a result given in pieces (``record.data`` unused), sent a piece at a
        time (COPY in binary format into a temporary table, then one INSERT from it): a 200 MB result
        is never joined, nor copied whole into the driver's send buffer."""
        if not record.created_at:
            record.created_at = self.now()
        params = {**result_params(replace(record, data=b"")), "size": sum(len(part) for part in parts)}
        params.pop("data")

        async def work(conn: Connection) -> None:
            await conn.execute(self.q["create_result_upload"])
            async with conn.cursor().copy(self.q["copy_result_upload"]) as copy:
                # PGCOPY header, one tuple of one field (its length, then its bytes), the trailer.
                await copy.write(_COPY_HEADER + struct.pack("!hi", 1, params["size"]))
                for part in parts:
                    await copy.write(part)
                await copy.write(struct.pack("!h", -1))
            await conn.execute(self.q["insert_result_upload"], params)

        await self.write(f"storing result {record.result_id}", work)

    async def get_result(self, result_id: str) -> ResultRecord | None:
        rows = await self.read(f"reading result {result_id}", "get_result", {"result_id": result_id}, binary=True)
        return result_from_row(rows[0]) if rows else None

    async def iter_result_bytes(self, result_id: str, *, slice_bytes: int = RESULT_SLICE_BYTES
                                ) -> AsyncIterator[bytes]:
        """A stored result's bytes, ``slice_bytes`` at a time (a 50 MB result read whole took 300 MB of
        the server's memory: the driver's buffer, the text it decodes from and the bytes). Binary
        format: a bytea is sent as bytes, not as hex text twice its size."""
        start, size = 1, None
        while size is None or start <= size:
            params = {"result_id": result_id, "start": start, "length": slice_bytes}
            rows = await self.read(f"reading result {result_id}", "get_result_slice", params, binary=True)
            if not rows:
                raise NotFoundError(f"result noetl://result/{result_id} not found (pruned, or stored by another NoETL)")
            data, size = rows[0]
            if data:
                yield bytes(data)
            start += slice_bytes

    def read_result(self, result_id: str) -> ResultRecord | None:
        """Synchronous, on its own connection: templates resolve a ``_ref`` while they render, inside
        the event loop, where the async pool cannot be awaited. One short indexed read per reference."""
        rows = self._sync_rows(f"reading result {result_id}", "get_result", {"result_id": result_id}, binary=True)
        return result_from_row(rows[0]) if rows else None

    def read_result_slice(self, result_id: str, start: int, length: int) -> bytes | None:
        """Bytes [start, start + length) of a stored result (from 0), synchronous like read_result;
        None when missing. Only that slice travels (binary format)."""
        # substring takes 32-bit integers, and a bytea holds at most 1 GB: a start or length past
        # that reads up to the end, as a slice does (an offset of 3e9 was 'function does not exist').
        params = {"result_id": result_id, "start": min(start + 1, _INT4_MAX), "length": min(max(length, 0), _INT4_MAX)}
        rows = self._sync_rows(f"reading result {result_id}", "get_result_slice", params, binary=True)
        return bytes(rows[0][0] or b"") if rows else None

    def _sync_rows(self, action: str, query: str, params: dict[str, Any], *, binary: bool = False) -> list[Any]:
        """One statement on the connection of the synchronous reads (see read_result)."""
        with self._sync_lock:
            for attempt in (1, 2):
                try:
                    if self._sync_conn is None or self._sync_conn.closed:
                        self._sync_conn = psycopg.connect(self.url, autocommit=True,
                                                          connect_timeout=int(self._connect_timeout))
                    return self._sync_conn.execute(self.q[query], params, binary=binary).fetchall()
                except psycopg.Error as exc:
                    self._sync_conn = None
                    # Once more on a fresh connection when this one was cut (a PostgreSQL restart,
                    # pg_terminate_backend): the async reads do the same.
                    if attempt == 1 and isinstance(exc, psycopg.OperationalError) and _is_disconnect(exc):
                        continue
                    raise StoreError(f"{action} failed: {_first_line(exc)}") from exc
        raise AssertionError("unreachable")

    def read_loop_reports(self, execution_id: str, step: str, entry: int, start: int, stop: int) -> list[LoopReport]:
        """The latest report of each iteration in [start, stop) of entry ``entry`` of loop ``step``
        (synchronous, on the connection of read_result: templates read them while they render)."""
        action = f"reading the results of loop {step!r} of execution {execution_id}"
        key = {"execution_id": db_id(execution_id), "step": step}
        bound = self._sync_rows(action, "loop_done_event", {**key, "entry": str(entry)})
        before = bound[0][0] if bound and bound[0][0] is not None else NO_BOUND
        return latest_reports(self._sync_rows(action, "loop_reports",
                                              {**key, "start": start, "stop": stop, "before": before}))

    async def get_loop_reports(self, execution_id: str, step: str, entry: int, start: int,
                               stop: int) -> list[LoopReport]:
        action = f"reading the results of loop {step!r} of execution {execution_id}"
        key = {"execution_id": db_id(execution_id), "step": step}
        bound = await self.read(action, "loop_done_event", {**key, "entry": str(entry)})
        before = bound[0][0] if bound and bound[0][0] is not None else NO_BOUND
        return latest_reports(await self.read(action, "loop_reports",
                                              {**key, "start": start, "stop": stop, "before": before}))

    async def find_result(self, name: str) -> ResultRecord | None:
        rows = await self.read(f"reading artifact {name}", "find_result", {"name": name}, binary=True)
        return result_from_row(rows[0]) if rows else None

    async def delete_results(self, *, created_before: str | None = None, expired_by: str | None = None) -> int:
        params = {"created_before": created_before, "expired_by": expired_by}
        return await self.read_write("deleting results", "delete_results", params)


async def _act_as_noetl_owner(conn: Connection) -> None:
    """Migrate as the owner of the `noetl` schema (of the database, before there is one) when the
    role running the migrations is another that may act as it (a superuser, a member of the owner's
    role): `noetl db init` run once as `postgres` to create the SQL endpoint's reader role must not
    leave NoETL's tables to `postgres`, where the server's own role could not use them."""
    cursor = await conn.execute(
        "SELECT owner FROM (SELECT COALESCE((SELECT nspowner FROM pg_namespace WHERE nspname = 'noetl'),"
        " (SELECT datdba FROM pg_database WHERE datname = current_database())) AS owner_id) AS o,"
        " LATERAL (SELECT pg_get_userbyid(o.owner_id) AS owner) AS n"
        " WHERE owner <> current_user AND pg_has_role(current_user, o.owner_id, 'MEMBER')")
    row = await cursor.fetchone()
    if row is not None:
        await conn.execute(pg_sql.SQL("SET LOCAL ROLE {}").format(pg_sql.Identifier(row[0])))


def is_transient(exc: BaseException) -> bool:
    """A store failure that the same write may not meet again: a deadlock or serialization failure,
    a lost connection, no free connection in the pool's time (all psycopg OperationalErrors)."""
    return isinstance(exc, StoreError) and isinstance(exc.__cause__, psycopg.OperationalError)


def _is_disconnect(exc: psycopg.OperationalError) -> bool:
    """The server went away (restart, failover) rather than refusing the statement."""
    return isinstance(exc, pg_errors.AdminShutdown | pg_errors.CannotConnectNow) or exc.sqlstate is None \
        or exc.sqlstate.startswith("08")


# start_execution's command parameters when it queues nothing (nothing is notified either).
_NO_COMMANDS: dict[str, Any] = {"now": None, "command_ids": [], "steps": [], "payloads": [], "commands_channel": ""}


@contextmanager
def _store_errors(action: str, if_duplicate: str | None = None) -> Iterator[None]:
    """Driver errors as StoreError naming ``action``; ``if_duplicate``: the error when a write breaks
    a unique constraint."""
    try:
        yield
    except NoetlError:
        raise
    except psycopg.Error as exc:
        if if_duplicate is not None and isinstance(exc, pg_errors.UniqueViolation):
            raise StoreError(if_duplicate) from exc
        raise StoreError(f"{action} failed: {_first_line(exc)}") from exc
    except Exception as exc:  # pool timeout and friends
        if type(exc).__module__.startswith("psycopg_pool"):
            raise StoreError(f"{action} failed: {exc}") from exc
        raise


async def _pipelined_transaction(conn: Connection, work: Callable[[Connection], Awaitable[T]]) -> T:
    """BEGIN, ``work`` and COMMIT in one pipeline, rolled back on any failure.

    Not psycopg's ``transaction()``: inside a pipeline it syncs right after queueing BEGIN, a round
    trip (and an event-loop wake-up) that carries nothing. Here BEGIN goes out with the first
    statements, and the pipeline's closing sync reports the COMMIT: an error in any statement or in
    the COMMIT itself raises before this returns.
    """
    try:
        async with conn.pipeline():
            await conn.execute(b"BEGIN", prepare=False)
            result = await work(conn)
            await conn.execute(b"COMMIT", prepare=False)
        return result
    except BaseException:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with suppress(psycopg.Error):  # a broken connection is dropped by the pool instead
                await conn.execute(b"ROLLBACK", prepare=False)
        raise


# FATAL answers that do pass: the server is starting, stopping, recovering or full, or is a standby
# not (yet) accepting connections (it does once it is consistent or promoted: a failover), or ended
# the connection as it shut down.
_PASSING_REFUSALS = ("starting up", "shutting down", "in recovery", "too many", "connection slots",
                     "not yet accepting connections", "not accepting connections", "administrator command")


def refuses_for_good(exc: psycopg.Error) -> bool:
    """Whether a failed connection is refused for good: libpq reports the server's answer as
    ``FATAL: ...`` (no SQLSTATE reaches psycopg here) or a missing password as ``fe_sendauth``."""
    text = str(exc)
    if "fe_sendauth" in text:
        return True
    return "FATAL:" in text and not any(reason in text for reason in _PASSING_REFUSALS)


def _connection_failure(exc: psycopg.Error) -> str:
    """libpq's reason for a refused connection, in one line: 'connection to server at "h", port 1
    failed: Connection refused' (its 'Is the server running ...?' hint dropped)."""
    text = _first_line(exc)
    return text.removeprefix("connection failed: ")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def redact_url(url: str) -> str:
    """The URL without its password (``user:password@``, or libpq's ``?password=``), for messages and
    logs; a URL without one is shown as written."""
    return redact_connection_secrets(url)
