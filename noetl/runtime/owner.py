"""Who runs a local execution, and whether that process is still alive.

A local execution lives inside the ``noetl run`` process that started it. Its row records the
owner as ``host:pid:start`` (``start`` is the process start time from ``/proc/<pid>/stat``, so a pid
that the operating system handed to a new process does not pass for the old one). When that
process died without recording an end (kill -9, power loss), the next ``noetl status`` /
``noetl run`` / ``noetl resume`` on the store records the execution as failed with
``error.kind: abandoned``, and ``noetl resume ID`` can continue it.

Owners on another host cannot be checked from here and are left alone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from noetl.clock import Clock, iso, utc_now
from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.errors import ErrorInfo
from noetl.store.base import Store

ABANDONED_KIND = "abandoned"


def current_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}"


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` is a process of this host that no longer runs."""
    try:
        host, pid_text, start = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False  # not a local owner (empty, or written by another runtime)
    if host != socket.gethostname() or pid <= 0:
        return False
    if not _pid_alive(pid):
        return True
    return bool(start) and _process_start(pid) not in ("", start)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return not _is_zombie(pid)


def _process_start(pid: int) -> str:
    """The process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or ""."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""


def _is_zombie(pid: int) -> bool:
    # A killed child that its parent has not reaped yet still answers kill(pid, 0).
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] == "Z"


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first), or [] off Linux."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text.rsplit(")", 1)[-1].split()


async def record_abandoned(store: Store, *, clock: Clock = utc_now) -> list[str]:
    """Record every running execution whose owner died as failed (``error.kind: abandoned``);
    return their ids."""
    found: list[str] = []
    for record in await store.list_executions(status="running", limit=10_000):
        if not record.owner or not owner_is_dead(record.owner):
            continue
        pid = record.owner.rsplit(":", 2)[1]
        message = f"abandoned: the process that ran it (pid {pid}) ended without recording an end"
        error = ErrorInfo(ABANDONED_KIND, message).to_dict()
        now = iso(clock())
        events = [Event(record.execution_id, kind, status="failed", error=error, created_at=now)
                  for kind in (ev.WORKFLOW_FAILED, ev.PLAYBOOK_FAILED)]
        stored = await store.transition_execution(
            record.execution_id, events, from_statuses=("running",), expect_owner=record.owner,
            update={"status": "failed", "error": message, "ended_at": now})
        if stored is not None:
            found.append(record.execution_id)
    return found
