"""The command queue on PostgreSQL: lease, heartbeat, release, reap, and the wake-up channel.

Workers lease with ``FOR UPDATE SKIP LOCKED`` (see ``lease_commands`` in queries.sql) and are woken by
``NOTIFY noetl_commands`` when a decision queues work; they also poll, so a lost notification (a
restart of PostgreSQL, a dropped listener connection) only delays work by one poll interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from noetl.store.postgres.ids import db_id
from noetl.store.postgres.store import PostgresStore

COMMANDS_CHANNEL = "noetl_commands"
EXECUTIONS_CHANNEL = "noetl_executions"  # payload: the id of an execution that just ended


@dataclass(slots=True)
class LeasedCommand:
    """A command a worker holds. A member of a batch row (several loop iterations in one row, see
    ``batch_members``) has its own ``command_id`` and payload, and the row's lease: ``row_id`` is the
    row leased, heartbeated and marked done, ``row_members`` the loop indices of every member."""

    command_id: str
    execution_id: str
    step: str
    attempt: int
    payload: dict[str, Any]
    lease_owner: str = ""
    row_id: str | None = None
    row_members: tuple[int, ...] = ()

    @property
    def lease_id(self) -> str:
        """The queue row holding this command's lease."""
        return self.row_id or self.command_id


# A batch row's payload: the fields its iterations share, and `members` (each iteration's own).
MEMBERS = "members"


def batch_members(row: LeasedCommand) -> list[LeasedCommand]:
    """The commands a leased row holds: itself, or each iteration of a batch row with the row's lease."""
    members = row.payload.get(MEMBERS)
    if members is None:
        return [row]
    shared = {key: value for key, value in row.payload.items() if key != MEMBERS}
    indices = tuple(int(member["loop_index"]) for member in members)
    return [LeasedCommand(member["command_id"], row.execution_id, row.step, row.attempt, {**shared, **member},
                          row.lease_owner, row.command_id, indices) for member in members]


def lease_ids(commands: list[LeasedCommand]) -> list[str]:
    """The queue rows of ``commands``, each once, in order."""
    return list(dict.fromkeys(command.lease_id for command in commands))


class CommandQueue:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def lease(self, *, owner: str, limit: int, lease_seconds: float, now: datetime) -> list[LeasedCommand]:
        params = {"owner": owner, "limit": limit, "lease_seconds": lease_seconds, "now": now}
        rows = await self.store.read("leasing commands", "lease_commands", params)
        return [member for command_id, execution_id, step, attempt, payload in rows
                for member in batch_members(LeasedCommand(command_id, str(execution_id), step, attempt, payload, owner))]

    async def get(self, command_id: str) -> LeasedCommand | None:
        """A command as stored (``lease_owner`` empty unless leased), or None."""
        rows = await self.store.read(f"reading command {command_id}", "get_command", {"command_id": command_id})
        if not rows:
            return None
        command_id, execution_id, step, attempt, owner, payload = rows[0]
        return LeasedCommand(command_id, str(execution_id), step, attempt, payload, owner or "")

    async def count(self, execution_id: str) -> int:
        """How many commands the execution's decisions have queued so far (any status)."""
        rows = await self.store.read(f"counting commands of {execution_id}", "count_commands",
                                     {"execution_id": db_id(execution_id)})
        return int(rows[0][0]) if rows else 0

    async def get_for(self, execution_id: str, command_id: str) -> LeasedCommand | None:
        """The command ``command_id`` if it belongs to ``execution_id`` (ids compared as stored)."""
        command = await self.get(command_id)
        if command is None or command.execution_id != str(db_id(execution_id)):
            return None
        return command

    async def heartbeat(self, *, owner: str, command_ids: list[str], lease_seconds: float,
                        now: datetime) -> set[str]:
        """Extend the leases still held; return the ids still held (others were reaped or cancelled)."""
        if not command_ids:
            return set()
        params = {"owner": owner, "command_ids": command_ids, "lease_seconds": lease_seconds, "now": now}
        rows = await self.store.read("extending leases", "heartbeat", params)
        return {row[0] for row in rows}

    async def release(self, *, owner: str, command_ids: list[str]) -> None:
        if command_ids:
            await self.store.read_write("releasing commands", "release_command",
                                        {"owner": owner, "command_ids": command_ids})

    async def requeue_expired(self, *, max_attempts: int, now: datetime) -> list[str]:
        rows = await self.store.read("re-queueing expired leases", "requeue_expired",
                                     {"max_attempts": max_attempts, "now": now})
        return [row[0] for row in rows]

    async def exhausted(self, *, max_attempts: int, now: datetime) -> list[LeasedCommand]:
        """Commands whose last lease lapsed with no attempt left (every member of a batch row: the
        decision ignores those already reported)."""
        rows = await self.store.read("reading exhausted commands", "exhausted_commands",
                                     {"max_attempts": max_attempts, "now": now})
        return [member for command_id, execution_id, step, attempt, owner, payload in rows
                for member in batch_members(LeasedCommand(command_id, str(execution_id), step, attempt, payload,
                                                          owner or ""))]

    async def wake_workers(self) -> None:
        await self.store.read("waking workers", "notify_commands", {"commands_channel": COMMANDS_CHANNEL})

    async def stats(self, now: datetime) -> dict[str, float]:
        depth = dict(await self.store.read("reading queue depth", "queue_depth", {}))
        age = await self.store.read("reading lease age", "oldest_lease_age", {"now": now})
        return {"queued": float(depth.get("queued", 0)), "leased": float(depth.get("leased", 0)),
                "oldest_lease_age_seconds": float(age[0][0] if age else 0)}
