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
    command_id: str
    execution_id: str
    step: str
    attempt: int
    payload: dict[str, Any]
    lease_owner: str = ""


class CommandQueue:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def lease(self, *, owner: str, limit: int, lease_seconds: float, now: datetime) -> list[LeasedCommand]:
        params = {"owner": owner, "limit": limit, "lease_seconds": lease_seconds, "now": now}
        rows = await self.store.read("leasing commands", "lease_commands", params)
        return [LeasedCommand(command_id, str(execution_id), step, attempt, payload, owner)
                for command_id, execution_id, step, attempt, payload in rows]

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
        rows = await self.store.read("reading exhausted commands", "exhausted_commands",
                                     {"max_attempts": max_attempts, "now": now})
        return [LeasedCommand(command_id, str(execution_id), step, attempt, payload, owner or "")
                for command_id, execution_id, step, attempt, owner, payload in rows]

    async def wake_workers(self) -> None:
        await self.store.read("waking workers", "notify_commands", {"commands_channel": COMMANDS_CHANNEL})

    async def stats(self, now: datetime) -> dict[str, float]:
        depth = dict(await self.store.read("reading queue depth", "queue_depth", {}))
        age = await self.store.read("reading lease age", "oldest_lease_age", {"now": now})
        return {"queued": float(depth.get("queued", 0)), "leased": float(depth.get("leased", 0)),
                "oldest_lease_age_seconds": float(age[0][0] if age else 0)}
