"""The embedded SQLite store used by the local runtime (``$NOETL_HOME/noetl.db``).

Connection settings and why:

- ``journal_mode=WAL``: readers never block the writer, so ``noetl status`` can read while
  ``noetl run`` appends, and a commit is one append to the ``-wal`` file instead of rewriting pages.
- ``synchronous=NORMAL``: under WAL a commit is written to the WAL file but not fsynced; fsync
  happens at checkpoints. A crash of the *process* (exception, kill -9) loses nothing, because the
  written WAL frames live in the OS page cache and are recovered on the next open. Only an OS crash
  or power loss can drop the last few commits, and even then the file is never corrupted. ``FULL``
  would fsync every commit (milliseconds on most disks), far above the 0.5 ms budget of a step.
- WAL checkpoints (copying the WAL into the file, with its fsyncs) run on a thread of their own
  (:mod:`noetl.store.sqlite.checkpoint`), not inside the commit that fills the WAL; the writer's
  automatic checkpoint stays as a backstop at a higher threshold.
- ``foreign_keys=ON``: an event cannot reference an execution that does not exist.
- ``busy_timeout``: a second process waits for the write lock instead of failing at once.

sqlite3 is called synchronously inside the async methods, on purpose: a call takes tens of
microseconds, while handing it to a thread (``asyncio.to_thread``) costs more than the call itself.
It also makes every method atomic for other coroutines, since no ``await`` happens while a
transaction is open. The only long wait is a busy wait on another process's write lock, bounded by
``busy_timeout``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from noetl.engine.events import Event
from noetl.errors import ExecutionEnded, NotFoundError, StoreError
from noetl.fileperms import private_directory, private_file
from noetl.store.base import ExecutionRecord, ExecutionState, LogRecord, ResultRecord
from noetl.store.common import (
    NO_BOUND,
    TERMINAL_STATUSES,
    LoopReport,
    catalog_id_for,
    decode_optional,
    execution_params,
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
from noetl.store.sqlite.checkpoint import BACKSTOP_PAGES, Checkpointer
from noetl.store.sqlite.rows import (
    catalog_params,
    event_from_row,
    event_head_from_row,
    event_rows,
    execution_from_row,
    number_rows,
    schedule_from_row,
    update_params,
)
from noetl.store.sqlite.sql import Migration, migrations, queries

if TYPE_CHECKING:
    # Imported by the methods that build them: a run builds none (see noetl.store.records).
    from noetl.store.records import (
        CatalogEntry,
        CredentialRecord,
        FireRecord,
        HookRecord,
        ScheduleRecord,
        TriggerRecord,
    )

T = TypeVar("T")
Clock = Callable[[], datetime]

MEMORY = ":memory:"


def utc_now() -> datetime:
    return datetime.now(UTC)


class SqliteStore:
    """Store protocol on one SQLite file. Open with ``await store.open()``, close with ``close()``."""

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Clock = utc_now, busy_timeout_ms: int = 5000
    ) -> None:
        self.path: Path | str = MEMORY if path == MEMORY else Path(path)
        self._clock = clock
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        # One connection may be shared by threads (e.g. a server thread and the CLI); the lock keeps
        # one transaction at a time on it. Uncontended, it costs well under a microsecond.
        self._lock = threading.Lock()
        # Last event_id per execution, so appends skip the MAX() query. Invalidated whenever another
        # connection has committed (PRAGMA data_version), so it is never stale.
        self._last_event_id: dict[str, int] = {}
        self._seen_data_version = -1
        self._q = queries()

    # lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self._conn is None:
            self._conn = self._connect()

    async def close(self) -> None:
        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._last_event_id.clear()

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _connect(self) -> sqlite3.Connection:
        target = self._prepare_location()
        try:
            conn = sqlite3.connect(
                target, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout_ms / 1000
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        try:
            self._configure(conn)
            self._migrate(conn)
            self._checkpointer = self._start_checkpoints(conn, target)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare_location(self) -> str:
        if not isinstance(self.path, Path):
            return self.path
        try:
            if not self.path.parent.exists():
                private_directory(self.path.parent)
            # SQLite gives the -wal and -shm files the database file's mode, so 0600 covers all three.
            private_file(self.path)
        except OSError as exc:
            raise StoreError(f"cannot create the store {self.path}: {exc.strerror}") from exc
        return str(self.path)

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")

    def _start_checkpoints(self, conn: sqlite3.Connection, target: str) -> Checkpointer | None:
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if target == MEMORY or str(journal_mode).lower() != "wal":
            return None
        conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        return Checkpointer(target, busy_timeout_ms=self._busy_timeout_ms)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # Check without the write lock first: opening an up-to-date file (the usual case, e.g.
        # `noetl status` while `noetl run` writes) must not wait for the writer.
        if not self._pending_migrations(conn):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(self._q["create_schema_migrations"])
            for migration in self._pending_migrations(conn):  # re-read under the lock
                self._apply_migration(conn, migration)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _pending_migrations(self, conn: sqlite3.Connection) -> list[Migration]:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        applied = {row[0] for row in conn.execute(self._q["applied_migrations"])} if exists else set()
        return [migration for migration in migrations() if migration.version not in applied]

    def _apply_migration(self, conn: sqlite3.Connection, migration: Migration) -> None:
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(
            self._q["record_migration"],
            {"version": migration.version, "name": migration.name, "applied_at": self._now()},
        )

    # plumbing --------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store {self.path} is not open")
        return self._conn

    def _now(self) -> str:
        return self._clock().isoformat()

    def _write(
        self,
        action: str,
        work: Callable[[sqlite3.Connection], T],
        committed: Callable[[T], None] | None = None,
    ) -> T:
        """Run ``work`` in one write transaction, then ``committed`` (still under the lock, so
        in-memory caches change only for committed data and in commit order).

        BEGIN IMMEDIATE takes the write lock up front, so a concurrent writer waits on
        busy_timeout instead of failing when a read transaction tries to upgrade.
        """
        conn = self._connection()
        with self._lock:
            try:
                changes = conn.total_changes
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"{action} failed on the store {self.path}: {exc}") from exc
            if self._checkpointer is not None:
                self._checkpointer.committed(conn.total_changes - changes)
            if committed is not None:
                committed(result)
        return result

    def _read(self, action: str, query: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        conn = self._connection()
        with self._lock:
            try:
                try:
                    return conn.execute(self._q[query], params).fetchall()
                except OverflowError:  # a number past SQLite's 64 bits (`?after=99999999999999999999999`)
                    return conn.execute(self._q[query], _within_64_bits(params)).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{action} failed on the store {self.path}: {exc}") from exc

    # executions and events -------------------------------------------------------------
    async def create_execution(self, record: ExecutionRecord, events: list[Event]) -> list[Event]:
        if not record.started_at:
            record.started_at = self._now()
        execution_row = execution_params(record)
        rows = event_rows(record.execution_id, events)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(self._q["insert_execution"], execution_row)
            number_rows(rows, 0)
            conn.executemany(self._q["insert_event"], rows)

        def committed(_: None) -> None:
            if record.status not in TERMINAL_STATUSES:
                self._last_event_id[record.execution_id] = len(rows)

        self._write(f"creating execution {record.execution_id}", work, committed)
        return stamp(events, record.execution_id, 0)

    async def append_events(
        self, execution_id: str, events: list[Event], *, update: dict[str, Any] | None = None
    ) -> list[Event]:
        rows = event_rows(execution_id, events)
        update_row = update_params(execution_id, update) if update else None

        def work(conn: sqlite3.Connection) -> int:
            last_id = self._last_id_while_running(conn, execution_id)
            number_rows(rows, last_id)
            conn.executemany(self._q["insert_event"], rows)
            if update_row is not None:
                conn.execute(self._q["update_execution"], update_row)
            return last_id

        def committed(last_id: int) -> None:
            if update and update.get("status") in TERMINAL_STATUSES:
                self._last_event_id.pop(execution_id, None)  # finished: drop its counter
            else:
                self._last_event_id[execution_id] = last_id + len(rows)

        last_id = self._write(f"appending events to execution {execution_id}", work, committed)
        return stamp(events, execution_id, last_id)

    def _last_id_while_running(self, conn: sqlite3.Connection, execution_id: str) -> int:
        """The execution's last event_id, read in the append's own transaction; ExecutionEnded if
        it has ended (another process may have cancelled it): nothing is recorded after the end,
        so a replay of the log ends where the execution did (SPEC section 10)."""
        data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        if data_version != self._seen_data_version:
            # Another connection committed since we last looked: our counters, and the knowledge
            # that their executions are still running, may be behind.
            self._last_event_id.clear()
            self._seen_data_version = data_version
        last_id = self._last_event_id.get(execution_id)  # only running executions have a counter
        if last_id is not None:
            return last_id
        found = conn.execute(self._q["get_execution_state"], {"execution_id": execution_id}).fetchone()
        if found is None:
            raise NotFoundError(f"unknown execution {execution_id}", execution_id=execution_id)
        status, last_id = str(found[0]), int(found[1])
        if status in TERMINAL_STATUSES:
            raise ExecutionEnded(execution_id, status)
        return last_id

    async def list_events(
        self, execution_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[Event]:
        params = {"execution_id": execution_id, "after_id": after_id, "limit": limit}
        rows = self._read(f"listing events of execution {execution_id}", "list_events", params)
        return [event_from_row(row) for row in rows]

    async def list_event_heads(
        self, execution_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[Event]:
        params = {"execution_id": execution_id, "after_id": after_id, "limit": limit}
        rows = self._read(f"listing events of execution {execution_id}", "list_event_heads", params)
        return [event_head_from_row(row) for row in rows]

    async def transition_execution(
        self, execution_id: str, events: list[Event], *, from_statuses: tuple[str, ...],
        update: dict[str, Any], owner: str | None = None, expect_owner: str | None = None,
    ) -> list[Event] | None:
        rows = event_rows(execution_id, events)
        update_row = update_params(execution_id, update)
        key = {"execution_id": execution_id}

        def work(conn: sqlite3.Connection) -> int | None:
            found = conn.execute(self._q["get_execution"], key).fetchone()
            if found is None:
                raise NotFoundError(f"unknown execution {execution_id}", execution_id=execution_id)
            current = execution_from_row(found)
            if current.status not in from_statuses or (expect_owner is not None and current.owner != expect_owner):
                return None
            last_id = int(conn.execute(self._q["max_event_id"], (execution_id,)).fetchone()[0])
            number_rows(rows, last_id)
            conn.executemany(self._q["insert_event"], rows)
            conn.execute(self._q["update_execution"], update_row)
            if owner is not None:
                conn.execute(self._q["set_execution_owner"], {**key, "owner": owner})
            return last_id

        def committed(last_id: int | None) -> None:
            self._last_event_id.pop(execution_id, None)  # re-read on the next append

        last_id = self._write(f"changing the status of execution {execution_id}", work, committed)
        return None if last_id is None else stamp(events, execution_id, last_id)

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        rows = self._read(
            f"reading execution {execution_id}", "get_execution", {"execution_id": execution_id}
        )
        return execution_from_row(rows[0]) if rows else None

    async def get_execution_state(self, execution_id: str) -> ExecutionState | None:
        rows = self._read(f"reading the state of execution {execution_id}", "get_execution_state",
                          {"execution_id": execution_id})
        if not rows:
            return None
        status, last_event_id, ended_at = rows[0]
        return ExecutionState(str(status), int(last_event_id), ended_at)

    async def list_executions(
        self, *, status: str | None = None, parent_execution_id: str | None = None, path: str | None = None,
        started_since: str | None = None, ended_since: str | None = None, limit: int = 100, offset: int = 0,
    ) -> list[ExecutionRecord]:
        params = {"status": status, "parent_execution_id": parent_execution_id, "path": path or None,
                  "started_since": utc_bound(started_since), "ended_since": utc_bound(ended_since),
                  "limit": max(limit, 0), "offset": max(offset, 0)}
        rows = self._read("listing executions", "list_executions", params)
        return [execution_from_row(row) for row in rows]

    # catalog ---------------------------------------------------------------------------
    async def register_catalog(self, *, path: str, kind: str, content: str, name: str = "") -> CatalogEntry:
        from noetl.store.records import CatalogEntry

        def work(conn: sqlite3.Connection) -> CatalogEntry:
            version = conn.execute(self._q["max_catalog_version"], {"path": path}).fetchone()[0] + 1
            entry = CatalogEntry(
                path=path,
                version=version,
                kind=kind,
                content=content,
                catalog_id=catalog_id_for(path, version),
                name=name,
                created_at=self._now(),
            )
            conn.execute(self._q["insert_catalog"], catalog_params(entry))
            return entry

        return self._write(f"registering {path} in the catalog", work)

    async def get_catalog(self, path: str, version: int | None = None) -> CatalogEntry | None:
        if version is None:
            rows = self._read(f"reading catalog entry {path}", "get_catalog_latest", {"path": path})
        else:
            params = {"path": path, "version": version}
            rows = self._read(f"reading catalog entry {path}", "get_catalog_version", params)
        from noetl.store.records import CatalogEntry

        return CatalogEntry(*rows[0]) if rows else None

    async def list_catalog(self, *, kind: str | None = None) -> list[CatalogEntry]:
        rows = self._read("listing the catalog", "list_catalog_latest", {"kind": kind})
        from noetl.store.records import CatalogEntry

        return [CatalogEntry(*row) for row in rows]

    # schedules ---------------------------------------------------------------------------
    async def put_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        params = schedule_params(record)
        params["created_at"] = params["created_at"] or self._now()
        params["enabled"] = int(record.enabled)
        self._write(f"storing schedule {record.name}", lambda conn: conn.execute(self._q["upsert_schedule"], params))
        stored = await self.get_schedule(record.name)
        assert stored is not None
        return stored

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        rows = self._read(f"reading schedule {name}", "get_schedule", {"name": name})
        return schedule_from_row(rows[0]) if rows else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [schedule_from_row(row) for row in self._read("listing schedules", "list_schedules", ())]

    async def update_schedule(self, name: str, *, enabled: bool | None = None, cursor: str | None = None) -> bool:
        params = {"name": name, "set_enabled": enabled is not None, "enabled": int(bool(enabled)),
                  "set_cursor": cursor is not None, "cursor": cursor}
        return self._write(f"changing schedule {name}",
                           lambda conn: conn.execute(self._q["update_schedule"], params).rowcount > 0)

    async def delete_schedule(self, name: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            conn.execute(self._q["delete_schedule_fires"], {"name": name})
            return conn.execute(self._q["delete_schedule"], {"name": name}).rowcount > 0

        return self._write(f"deleting schedule {name}", work)

    async def claim_fire(self, fire: FireRecord) -> bool:
        params = fire_params(fire)
        params["created_at"] = params["created_at"] or self._now()
        return self._write(f"recording a fire time of schedule {fire.schedule}",
                           lambda conn: conn.execute(self._q["claim_fire"], params).rowcount > 0)

    async def start_queued_fire(self, schedule: str, scheduled_for: str, execution_id: str) -> bool:
        params = {"schedule": schedule, "scheduled_for": scheduled_for, "execution_id": execution_id}
        return self._write(f"starting a queued fire time of schedule {schedule}",
                           lambda conn: conn.execute(self._q["start_queued_fire"], params).rowcount > 0)

    async def list_fires(self, schedule: str, *, status: str | None = None, limit: int = 100) -> list[FireRecord]:
        params = {"schedule": schedule, "status": status, "limit": limit}
        from noetl.store.records import FireRecord

        return [FireRecord(*row) for row in self._read(f"listing fire times of schedule {schedule}", "list_fires",
                                                        params)]

    # hooks -------------------------------------------------------------------------------
    async def put_hook(self, record: HookRecord) -> HookRecord:
        params = hook_params(record)
        params["created_at"] = params["created_at"] or self._now()
        self._write(f"storing hook {record.name}", lambda conn: conn.execute(self._q["upsert_hook"], params))
        stored = await self.get_hook(record.name)
        assert stored is not None
        return stored

    async def get_hook(self, name: str) -> HookRecord | None:
        rows = self._read(f"reading hook {name}", "get_hook", {"name": name})
        return hook_from_row(rows[0]) if rows else None

    async def list_hooks(self) -> list[HookRecord]:
        return [hook_from_row(row) for row in self._read("listing hooks", "list_hooks", ())]

    async def delete_hook(self, name: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            conn.execute(self._q["delete_hook_deliveries"], {"name": name})
            return conn.execute(self._q["delete_hook"], {"name": name}).rowcount > 0

        return self._write(f"deleting hook {name}", work)

    async def claim_delivery(self, hook: str, delivery_id: str) -> bool:
        params = {"hook": hook, "delivery_id": delivery_id, "created_at": self._now()}
        return self._write(f"recording a delivery of hook {hook}",
                           lambda conn: conn.execute(self._q["claim_delivery"], params).rowcount > 0)

    # completion triggers -----------------------------------------------------------------
    async def put_trigger(self, record: TriggerRecord) -> TriggerRecord:
        params = trigger_params(record)
        params["created_at"] = params["created_at"] or self._now()
        self._write(f"storing trigger {record.name}", lambda conn: conn.execute(self._q["upsert_trigger"], params))
        return next(t for t in await self.list_triggers() if t.name == record.name)

    async def list_triggers(self) -> list[TriggerRecord]:
        return [trigger_from_row(row) for row in self._read("listing triggers", "list_triggers", ())]

    async def delete_trigger(self, name: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            conn.execute(self._q["delete_trigger_fires"], {"name": name})
            return conn.execute(self._q["delete_trigger"], {"name": name}).rowcount > 0

        return self._write(f"deleting trigger {name}", work)

    async def claim_trigger_fire(self, trigger: str, source_execution_id: str, execution_id: str) -> bool:
        params = {"trigger": trigger, "source": source_execution_id, "execution_id": execution_id,
                  "created_at": self._now()}
        return self._write(f"recording a fire of trigger {trigger}",
                           lambda conn: conn.execute(self._q["claim_trigger_fire"], params).rowcount > 0)

    async def try_scheduler_lock(self) -> bool:
        # The embedded store serves one laptop: there is no second server to keep out. Two
        # `noetl scheduler` processes on one file still run each fire time once (claim_fire).
        return True

    # credentials -----------------------------------------------------------------------
    async def put_credential(self, record: CredentialRecord) -> None:
        params = {
            "name": record.name,
            "type": record.type,
            "data": bytes(record.data),
            "description": record.description,
            "now": self._now(),
        }
        self._write(
            f"storing credential {record.name}",
            lambda conn: conn.execute(self._q["upsert_credential"], params),
        )

    async def get_credential(self, name: str) -> CredentialRecord | None:
        rows = self._read(f"reading credential {name}", "get_credential", {"name": name})
        from noetl.store.records import CredentialRecord

        return CredentialRecord(*rows[0]) if rows else None

    async def list_credentials(self) -> list[CredentialRecord]:
        rows = self._read("listing credentials", "list_credentials", ())
        from noetl.store.records import CredentialRecord

        return [CredentialRecord(*row) for row in rows]

    async def delete_credential(self, name: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute(self._q["delete_credential"], {"name": name}).rowcount > 0

        return self._write(f"deleting credential {name}", work)

    async def delete_executions(self, *, ended_before: str) -> list[str]:
        def work(conn: sqlite3.Connection) -> list[str]:
            ids = [row[0] for row in conn.execute(self._q["finished_before"], {"ended_before": ended_before})]
            for execution_id in ids:
                conn.execute(self._q["delete_execution_events"], {"execution_id": execution_id})
                conn.execute(self._q["delete_execution_logs"], {"execution_id": execution_id})
                conn.execute(self._q["delete_execution"], {"execution_id": execution_id})
            return ids

        return self._write("deleting old executions", work)

    # logs streamed while calls run -------------------------------------------------------
    async def append_logs(self, records: list[LogRecord]) -> None:
        now = self._now()
        rows = [{"execution_id": r.execution_id, "step": r.step, "loop_index": r.loop_index, "stream": r.stream,
                 "line": r.line, "created_at": r.created_at or now} for r in records]
        if rows:
            self._write("storing logs", lambda conn: conn.executemany(self._q["insert_log"], rows))

    async def list_logs(self, execution_id: str, *, after_id: int = 0, step: str | None = None,
                        limit: int | None = None) -> list[LogRecord]:
        params = {"execution_id": execution_id, "after_id": after_id, "step": step, "limit": limit}
        rows = self._read(f"listing logs of execution {execution_id}", "list_logs", params)
        return [LogRecord(execution_id=row[1], step=row[2], loop_index=row[3], stream=row[4], line=row[5],
                          created_at=row[6], log_id=row[0]) for row in rows]

    # results stored by reference ---------------------------------------------------------
    async def put_result(self, record: ResultRecord) -> None:
        if not record.created_at:
            record.created_at = self._now()
        params = result_params(record)
        self._write(f"storing result {record.result_id}",
                    lambda conn: conn.execute(self._q["insert_result"], params))

    async def put_result_parts(self, record: ResultRecord, parts: Sequence[bytes]) -> None:
        """:meth:`put_result` of a result given in pieces (``record.data`` unused): written into its
        row a piece at a time, so its bytes never exist joined in memory, nor copied by SQLite."""
        if not record.created_at:
            record.created_at = self._now()
        params = {**result_params(replace(record, data=b"")), "size": sum(len(part) for part in parts)}

        def work(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(self._q["insert_result_space"], params)
            if cursor.rowcount != 1 or cursor.lastrowid is None:
                return  # a re-delivered command: the first copy wins
            with conn.blobopen("result", "data", cursor.lastrowid) as blob:
                for part in parts:
                    blob.write(part)

        self._write(f"storing result {record.result_id}", work)

    async def get_result(self, result_id: str) -> ResultRecord | None:
        return self.read_result(result_id)

    def read_result(self, result_id: str) -> ResultRecord | None:
        """Synchronous on purpose: templates resolve a ``_ref`` while they render (see noetl.results)."""
        rows = self._read(f"reading result {result_id}", "get_result", {"result_id": result_id})
        return result_from_row(rows[0]) if rows else None

    def read_result_slice(self, result_id: str, start: int, length: int) -> bytes | None:
        """Bytes [start, start + length) of a stored result (from 0), read from its pages alone (an
        incremental blob read: a piece of a 100 MB result never loads the rest); None when missing."""
        conn = self._connection()
        with self._lock:
            try:
                row = conn.execute("SELECT rowid FROM result WHERE result_id = ?", (result_id,)).fetchone()
                if row is None:
                    return None
                with conn.blobopen("result", "data", row[0], readonly=True) as blob:
                    start = min(start, len(blob))  # past the end reads nothing, as a slice does
                    blob.seek(start)
                    return blob.read(min(max(length, 0), len(blob) - start))
            except sqlite3.Error as exc:
                raise StoreError(f"reading result {result_id} failed on the store {self.path}: {exc}") from exc

    def read_loop_reports(self, execution_id: str, step: str, entry: int, start: int, stop: int) -> list[LoopReport]:
        """The latest report of each iteration in [start, stop) of entry ``entry`` of loop ``step``
        (synchronous, like read_result: templates read a loop's results while they render)."""
        action = f"reading the results of loop {step!r} of execution {execution_id}"
        bound = self._read(action, "loop_done_event", {"execution_id": execution_id, "step": step, "entry": entry})
        params = {"execution_id": execution_id, "step": step, "start": start, "stop": stop,
                  "before": bound[0][0] if bound and bound[0][0] is not None else NO_BOUND}
        rows = self._read(action, "loop_reports", params)
        return latest_reports((i, t, decode_optional(r), decode_optional(e)) for i, t, r, e in rows)

    async def get_loop_reports(self, execution_id: str, step: str, entry: int, start: int,
                               stop: int) -> list[LoopReport]:
        return self.read_loop_reports(execution_id, step, entry, start, stop)

    async def find_result(self, name: str) -> ResultRecord | None:
        rows = self._read(f"reading artifact {name}", "find_result", {"name": name})
        return result_from_row(rows[0]) if rows else None

    async def delete_results(self, *, created_before: str | None = None, expired_by: str | None = None) -> int:
        params = {"created_before": created_before, "expired_by": expired_by}
        return self._write("deleting results",
                           lambda conn: conn.execute(self._q["delete_results"], params).rowcount)


_INT64 = (-(2**63), 2**63 - 1)


def _within_64_bits(params: Sequence[Any] | dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
    """``params`` with each integer past 64 bits at the nearest 64-bit one: no id, version or
    offset of a row is that far, so a read finds the same rows (none after it, none equal to it)."""
    def clamp(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return min(max(value, _INT64[0]), _INT64[1])
        return value

    if isinstance(params, dict):
        return {key: clamp(value) for key, value in params.items()}
    return [clamp(value) for value in params]
