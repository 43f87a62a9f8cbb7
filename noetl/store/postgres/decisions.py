"""The statements of a decision transaction on PostgreSQL, as domain operations with typed rows.

The distributed runtime's decision core (noetl/runtime/distributed.py) tells the story of a decision
(lock, check the leases, catch up, handle, record, commit); this module is how each of those steps
reads and writes PostgreSQL. Everything here runs on the connection of the caller's transaction.

Lock order, always: the execution row, then its reported commands sorted by id, so transactions
that lock overlapping sets of commands cannot deadlock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from noetl.engine.commands import Command
from noetl.engine.events import Event
from noetl.errors import StoreError
from noetl.store.common import encode_json
from noetl.store.postgres.arrays import BigintArray, BoolArray, IntArray, TextArray
from noetl.store.postgres.ids import db_id
from noetl.store.postgres.queue import (
    COMMANDS_CHANNEL,
    EXECUTIONS_CHANNEL,
    MEMBERS,
    LeasedCommand,
    batch_members,
)
from noetl.store.postgres.rows import bump_params, event_arrays, event_from_row
from noetl.store.postgres.store import Connection, PostgresStore

# The NOTIFY channels, as parameters of the statements that notify.
CHANNELS = {"commands_channel": COMMANDS_CHANNEL, "executions_channel": EXECUTIONS_CHANNEL}
# Loop iterations one batch row holds at most (see command_rows): a row is leased, heartbeated and
# marked done once for all of them, and runs on one worker.
MAX_BATCH_MEMBERS = 32


@dataclass(frozen=True, slots=True)
class Lease:
    """A reported command's row as locked by the decision."""

    status: str
    attempt: int
    owner: str | None

    def held_by(self, leased: LeasedCommand) -> bool:
        """Still leased by the reporter in the same attempt (else: a duplicate report, or a worker
        whose lease expired and was given to another)."""
        return self.status == "leased" and self.attempt == leased.attempt and self.owner == leased.lease_owner


@dataclass(frozen=True, slots=True)
class LockedExecution:
    status: str
    last_event_id: int
    leases: dict[str, Lease]


@dataclass(slots=True)
class NewCommandLeases:
    """How many of a decision's new commands are inserted already leased to the deciding worker
    (the first ``count``; iterations of one loop among them share batch rows, see command_rows)."""

    count: int = 0
    owner: str | None = None
    seconds: float = 0.0


@dataclass(slots=True)
class DecisionWrite:
    """Everything one decision writes: the events (ids assigned, encoded as ``rows``), the execution's
    final state when it ended, the new commands and the reported commands now done."""

    execution_id: str
    rows: list[list[Any]]  # encoded by rows.event_rows; numbered from first_event_id by record()
    first_event_id: int
    now: str
    update: dict[str, Any] | None = None
    commands: list[Command] = field(default_factory=list)
    as_of: int = 0
    done_ids: list[str] = field(default_factory=list)
    leases: NewCommandLeases = field(default_factory=NewCommandLeases)
    _rows: list[CommandRow] | None = None

    def command_rows(self) -> list[CommandRow]:
        """The new commands' queue rows (once ``as_of`` and ``leases`` are final), built once: the
        insert and the leases claimed for the deciding worker share them."""
        if self._rows is None:
            self._rows = command_rows(self.commands, self.as_of, self.leases.count)
        return self._rows


@dataclass(slots=True)
class CommandRow:
    """One row of the command queue: a command, or a batch of loop iterations (``members``)."""

    command_id: str
    step: str
    payload: dict[str, Any]
    text: str  # the payload encoded
    leased: bool  # inserted leased to the deciding worker
    size: int = 1


def command_rows(commands: list[Command], as_of: int, leased: int) -> list[CommandRow]:
    """Queue rows for ``commands``, the first ``leased`` of them inserted leased to the deciding worker.

    Among those, consecutive iterations of one loop entry share a batch row of up to
    MAX_BATCH_MEMBERS (the engine issues a loop's window as consecutive commands): the worker that
    runs them holds one lease, renews one row and marks one row done for all of them. Queued
    commands stay one row each, for whichever worker (or API worker, or external runner) leases them.
    """
    rows: list[CommandRow] = []
    batch: list[Command] = []

    def flush() -> None:
        if len(batch) == 1:
            rows.append(single_row(batch[0], as_of, leased=True))
        elif batch:
            rows.append(batch_row(batch, as_of))
        batch.clear()

    for command in commands[:leased]:
        if batch and (len(batch) == MAX_BATCH_MEMBERS or not same_batch(batch[0], command)):
            flush()
        if batchable(command):
            batch.append(command)
        else:
            flush()
            rows.append(single_row(command, as_of, leased=True))
    flush()
    rows.extend(single_row(command, as_of, leased=False) for command in commands[leased:])
    return rows


def batchable(command: Command) -> bool:
    return command.loop_index is not None and command.cursor is None


def same_batch(first: Command, command: Command) -> bool:
    """Whether ``command`` runs like ``first`` (same loop entry and task settings)."""
    return (command.step == first.step and command.entry == first.entry and command.timeout == first.timeout
            and command.strict == first.strict and command.tasks == first.tasks
            and command.warnings == first.warnings)


def single_row(command: Command, as_of: int, *, leased: bool) -> CommandRow:
    payload = payload_fields(command, as_of)
    return CommandRow(command.command_id, command.step, payload, encode_json(payload), leased)


def batch_row(commands: list[Command], as_of: int) -> CommandRow:
    """Iterations of one loop entry in one row: what they share once, and each one's own fields."""
    first = commands[0]
    shared = {key: value for key, value in payload_fields(first, as_of).items() if key in BATCH_SHARED}
    members = [{"command_id": c.command_id, "loop_index": c.loop_index, "args": c.args,
                "arc_input": c.arc_input, "local": c.local, **({"sealed": c.sealed} if c.sealed else {})}
               for c in commands]
    payload = {**shared, MEMBERS: members}
    return CommandRow(f"{first.command_id}+{len(commands)}", first.step, payload, encode_json(payload), True,
                      len(commands))


# The payload fields every member of a batch row shares (same_batch).
BATCH_SHARED = frozenset({"tasks", "entry", "timeout", "as_of", "strict", "warnings"})


def command_payload(command: Command, as_of: int) -> str:
    return encode_json(payload_fields(command, as_of))


def payload_fields(command: Command, as_of: int) -> dict[str, Any]:
    """The queue row keeps the command's fields; the render context is rebuilt by the worker from the
    state folded up to event ``as_of`` (the decision's last event), so a worker whose cache is already
    that far skips reading the log."""
    return {
        "tasks": command.tasks, "args": command.args, "arc_input": command.arc_input, "local": command.local,
        "loop_index": command.loop_index, "entry": command.entry, "timeout": command.timeout, "as_of": as_of,
        **({"cursor": command.cursor} if command.cursor is not None else {}),
        **({"strict": True} if command.strict else {}), **({"warnings": command.warnings} if command.warnings else {}),
        **({"sealed": command.sealed} if command.sealed else {}),
    }


def command_arrays(commands: list[Command], as_of: int) -> dict[str, list[str]]:
    """New commands as the column arrays of the statements that queue them."""
    return {"command_ids": [c.command_id for c in commands], "steps": [c.step for c in commands],
            "payloads": [command_payload(c, as_of) for c in commands]}


# record_decisions' per-execution arrays, and the parameter of bump_params each element comes from.
EXECUTION_ARRAYS = (("execution_ids", "execution_id"), ("counts", "count"), ("set_statuses", "set_status"),
                    ("new_statuses", "status"), ("set_results", "set_result"), ("new_results", "result"),
                    ("set_errors", "set_error"), ("new_errors", "error"),
                    ("set_ended_ats", "set_ended_at"), ("new_ended_ats", "ended_at"))
# Each array's element type, as record_decisions casts it (arrays.py: dumped without inspection; an
# array not listed goes as a plain list, whose elements psycopg inspects).
ARRAY_TYPES: dict[str, type[list[Any]]] = {
    "execution_ids": BigintArray, "counts": IntArray, "event_execution_ids": BigintArray, "event_ids": BigintArray,
    "command_execution_ids": BigintArray,
    **dict.fromkeys(("set_statuses", "set_results", "set_errors", "set_ended_ats"), BoolArray),
    **dict.fromkeys(("new_statuses", "new_results", "new_errors", "new_ended_ats", "event_types", "node_names",
                     "statuses", "results", "errors", "metas", "created_ats", "command_ids", "steps", "payloads",
                     "command_created_ats", "lease_owners", "done_ids", "ended_keys"), TextArray),
}


def decision_arrays(writes: list[DecisionWrite]) -> dict[str, Any]:
    """Decisions of several executions as the column arrays of ``record_decisions``: one element per
    execution, per event (event ids assigned here, numbered from each write's first_event_id) and
    per new queue row (with its lease owner when it is inserted leased; see command_rows)."""
    executions: dict[str, list[Any]] = {array: [] for array, _ in EXECUTION_ARRAYS}
    rows: list[list[Any]] = []
    commands: dict[str, list[Any]] = {key: [] for key in (
        "command_ids", "command_execution_ids", "steps", "payloads", "command_created_ats", "lease_owners")}
    done_ids: list[str] = []
    ended_keys: list[str] = []
    queued = False
    lease_seconds = 0.0
    for write in writes:
        bump = bump_params(write.execution_id, len(write.rows), write.update)
        number = bump["execution_id"]
        for array, param in EXECUTION_ARRAYS:
            executions[array].append(bump[param])
        if bump["set_status"]:
            ended_keys.append(write.execution_id)
        for event_id, row in enumerate(write.rows, start=write.first_event_id):
            row[1] = event_id
            rows.append(row)
        leased = write.leases.count
        for queued_row in write.command_rows():
            commands["command_ids"].append(queued_row.command_id)
            commands["command_execution_ids"].append(number)
            commands["steps"].append(queued_row.step)
            commands["payloads"].append(queued_row.text)
            commands["command_created_ats"].append(write.now)
            commands["lease_owners"].append(write.leases.owner if queued_row.leased else None)
        queued = queued or len(write.commands) > leased
        if leased:
            lease_seconds = write.leases.seconds
        done_ids.extend(write.done_ids)
    arrays = {**executions, "event_execution_ids": [row[0] for row in rows], **event_arrays(rows), **commands,
              "done_ids": done_ids, "ended_keys": ended_keys}
    return {**{key: ARRAY_TYPES.get(key, list)(values) for key, values in arrays.items()},
            "notify_commands": queued, "lease_seconds": lease_seconds}


def leased_to(write: DecisionWrite, owner: str) -> list[LeasedCommand]:
    """The commands ``record`` inserts leased to ``owner`` (``NewCommandLeases``), each member of a
    batch row on its own, with the payload as a lease from the queue would read it back."""
    return [member for row in write.command_rows() if row.leased
            for member in batch_members(LeasedCommand(row.command_id, write.execution_id, row.step, 1,
                                                      json.loads(row.text), owner))]


class DecisionStatements:
    """The decision transaction's reads and writes, on one PostgreSQL store's named queries."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.q = store.q

    async def lock(self, conn: Connection, execution_id: str, command_ids: list[str]) -> LockedExecution | None:
        """Lock the execution row, then the reported commands (one round trip in pipeline mode)."""
        locked = await conn.execute(self.q["lock_execution"], {"execution_id": db_id(execution_id)})
        commands = await conn.execute(self.q["lock_commands"], {"command_ids": command_ids}) if command_ids else None
        row = await locked.fetchone()
        if row is None:
            return None
        leases = ({command_id: Lease(status, int(attempt), owner)
                   for command_id, status, attempt, owner in await commands.fetchall()}
                  if commands is not None else {})
        status, last_event_id = row
        return LockedExecution(status=str(status), last_event_id=int(last_event_id), leases=leases)

    async def lock_many(self, conn: Connection, execution_ids: list[str],
                        command_ids: list[str]) -> dict[str, LockedExecution]:
        """Lock several executions (in id order), then all their reported commands (in id order), in
        one statement: the first of a group transaction. Unknown executions are absent."""
        by_number = {db_id(execution_id): execution_id for execution_id in execution_ids}
        cursor = await conn.execute(self.q["lock_group"], {"execution_ids": BigintArray(sorted(by_number)),
                                                           "command_ids": TextArray(command_ids)})
        executions, leases = [], {}
        for number, status, last_event_id, command_id, attempt, owner in await cursor.fetchall():
            if command_id is None:
                executions.append((by_number[int(number)], str(status), int(last_event_id)))
            else:
                leases[command_id] = Lease(status, int(attempt), owner)
        return {execution_id: LockedExecution(status=status, last_event_id=last_event_id, leases=leases)
                for execution_id, status, last_event_id in executions}

    async def events_after(self, conn: Connection, execution_id: str, after_id: int) -> list[Event]:
        """One page of the events after ``after_id``, in order (catching a cache up with the log)."""
        cursor = await conn.execute(self.q["list_events"], {
            "execution_id": db_id(execution_id), "after_id": after_id, "limit": self.store.event_page})
        events = [event_from_row(execution_id, row) for row in await cursor.fetchall()]
        if not events:
            raise StoreError(f"execution {execution_id}: events after {after_id} are missing")
        return events

    async def finish_commands(self, conn: Connection, command_ids: list[str], status: str) -> None:
        if command_ids:
            await conn.execute(self.q["finish_commands"], {"command_ids": command_ids, "status": status})

    async def cancel_open_commands(self, conn: Connection, execution_id: str) -> None:
        """What is still queued or running can no longer matter: workers skip it, or stop it at their
        next heartbeat."""
        await conn.execute(self.q["cancel_commands"], {"execution_id": db_id(execution_id)})

    async def record(self, conn: Connection, writes: list[DecisionWrite], *, lease_now: datetime) -> None:
        """Every decision of the transaction in one statement (``record_decisions``), whatever the
        number of executions: it goes out with the COMMIT."""
        if writes:
            await conn.execute(self.q["record_decisions"], {**decision_arrays(writes), **CHANNELS,
                                                            "lease_now": lease_now})

    async def queue(self, conn: Connection, execution_id: str, commands: list[Command], *, now: str,
                    as_of: int) -> None:
        if commands:
            await conn.execute(self.q["queue_commands"], {
                "execution_id": db_id(execution_id), "now": now, **command_arrays(commands, as_of), **CHANNELS})

    async def start(self, execution_id: str, params: dict[str, Any], rows: list[list[Any]],
                    commands: list[Command], *, now: str) -> None:
        """A new execution's row (``params``), its first events (encoded ``rows``) and its first
        commands, as of its last event, in one statement on its own connection (one COMMIT)."""
        await self.store.start_execution(execution_id, params, rows, {
            "now": now, **command_arrays(commands, len(rows)), **CHANNELS})
