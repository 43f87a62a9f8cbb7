"""The server's side of workers that hold no database credentials (``noetl worker start --server-url``).

Such a worker leases, heartbeats and reports through the server's API; the server does on its behalf
what a database worker does itself: the lease runs the same ``FOR UPDATE SKIP LOCKED`` statement, a
report goes through the same :class:`DecisionCore` transaction (so a duplicate or late report is
ignored exactly as it is for a database worker), and expired leases are re-queued by the server's
reaper. The guarantees are the same: at-least-once execution, each outcome recorded once.

A leased command travels with what running it needs and a database worker would read from its own
cache: the playbook text and the command's render context (results so far, ``ctx``, workload,
resolved keychain and secrets). The worker is trusted with those secrets as a database worker is;
the API token it holds is what protects them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.errors import InputError, NotFoundError
from noetl.results.codec import head_text
from noetl.results.refs import PREVIEW_CHARS, preview_of
from noetl.results.storage import storage_for
from noetl.runtime.childcalls import check_child_call, stored_ancestry
from noetl.runtime.distributed import DecisionCore, load_status
from noetl.runtime.sealing import unsealed_payload
from noetl.runtime.wire import child_execution_id, encode_context
from noetl.store.base import LogRecord
from noetl.store.postgres.queue import CommandQueue, LeasedCommand, batch_members

MAX_LEASE_BATCH = 64


def check_call_report(report: Event, command_id: str, step: str, loop_index: Any) -> None:
    """A report on a command is that call's outcome, filed under the command's step and iteration:
    the engine takes the step and the loop index from the event, so a report naming another
    iteration would count that one twice and leave its own never done (the loop running for ever),
    and another event type (``execution.cancelled``) is no call's outcome."""
    if report.event_type not in (ev.CALL_DONE, ev.CALL_ERROR):
        raise InputError(f"report event_type {report.event_type!r}: a command's report is "
                         f"{ev.CALL_DONE} or {ev.CALL_ERROR}")
    if report.node_name != step:
        raise InputError(f"report node_name {report.node_name!r}: command {command_id} runs step {step!r}")
    if isinstance(loop_index, int) and report.meta.get("loop_index") != loop_index:
        raise InputError(f"report meta.loop_index {report.meta.get('loop_index')!r}: command {command_id} "
                         f"runs iteration {loop_index}")


class WorkerGateway:
    """Lease / heartbeat / report / credentials / child calls for remote workers, on the server's core."""

    def __init__(self, core: DecisionCore) -> None:
        self.core = core
        self.queue = CommandQueue(core.store)

    async def lease(self, *, worker: str, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
        limit = max(0, min(limit, MAX_LEASE_BATCH))
        if limit == 0:
            return []
        leased = await self.queue.lease(owner=worker, limit=limit, lease_seconds=lease_seconds, now=self.core.now())
        shipped = []
        for command in leased:
            item = await self._shippable(command)
            if item is not None:
                shipped.append(item)
        return shipped

    async def _shippable(self, leased: LeasedCommand) -> dict[str, Any] | None:
        found = await self.core.leased_command(leased)
        if found is None:
            return None
        cached, command = found
        return {"command_id": leased.command_id, "execution_id": leased.execution_id, "step": leased.step,
                **({"lease_id": leased.row_id} if leased.row_id else {}),
                "attempt": leased.attempt, "payload": unsealed_payload(leased.payload), "playbook": cached.playbook_text,
                "context": encode_context(command.context),
                "parent_execution_id": cached.services.request.parent_execution_id,
                "secrets": shippable_secrets(cached.services.redactor.secrets)}

    async def heartbeat(self, *, worker: str, command_ids: list[str], lease_seconds: float) -> list[str]:
        held = await self.queue.heartbeat(owner=worker, command_ids=command_ids, lease_seconds=lease_seconds,
                                          now=self.core.now())
        return sorted(held)

    async def report(self, *, worker: str, command_id: str, attempt: int, event: dict[str, Any],
                     secrets: list[str], lease_id: str | None = None) -> bool:
        """Record a command's outcome; False when it was ignored (duplicate, or the lease was lost).
        ``lease_id``: the batch row a member of one was leased with."""
        try:
            report = Event.from_dict(event)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed report event: {exc}") from None
        stored = await self.queue.get_for(report.execution_id, lease_id or command_id)
        member = next((m for m in batch_members(stored) if m.command_id == command_id), None) if stored else None
        if member is None:
            return False
        check_call_report(report, command_id, member.step, member.payload.get("loop_index"))
        cached = await self.core.cached(report.execution_id)
        if cached is None:
            return False
        cached.services.redactor.add(set(secrets))
        leased = LeasedCommand(command_id, report.execution_id, member.step, attempt, member.payload, worker,
                               member.row_id, member.row_members)
        return await self.core.report(leased, report)

    async def logs(self, lines: list[dict[str, Any]]) -> int:
        """Store lines a remote worker's commands printed, redacted with their execution's secrets
        (as reports are); lines of an execution this server does not know are dropped."""
        records: list[LogRecord] = []
        for execution_id in dict.fromkeys(line["execution_id"] for line in lines):
            cached = await self.core.cached(execution_id)
            if cached is None:
                continue
            redact = cached.services.redactor.redact_text
            records.extend(LogRecord(execution_id, str(line["step"]), redact(str(line["line"])), line["stream"],
                                     line.get("loop_index"), str(line["created_at"]))
                           for line in lines if line["execution_id"] == execution_id)
        await self.core.store.append_logs(records)
        return len(records)

    async def credential(self, *, execution_id: str, name: str) -> dict[str, Any]:
        cached = await self.core.cached(execution_id)
        if cached is None:
            raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
        return await cached.services.get_credential(name)

    async def store_result(self, *, execution_id: str, command_id: str, data: bytes, sha256: str,
                           ttl_seconds: float | None) -> dict[str, Any]:
        """Store a result a remote worker's command produced (its JSON text, already redacted by the
        worker as its events are) in the result table; returns the reference its report will carry."""
        prefix = f"{execution_id}/"
        if not command_id.startswith(prefix) or command_id.count("/") < 2:
            raise InputError(f"command_id {command_id!r} is not a command of execution {execution_id}")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise InputError("sha256 does not match the uploaded result (truncated upload?)")
        if await self.core.store.get_execution(execution_id) is None:
            raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
        step = command_id[len(prefix):].split("/", 1)[0]
        return await storage_for(self.core.store, shared=True).put(
            data, sha256=sha256, kind="db", execution_id=execution_id, step=step, ttl_seconds=ttl_seconds,
            preview=preview_of(head_text(data, PREVIEW_CHARS)))

    async def start_child(self, *, execution_id: str, command_id: str, call_index: int, path: str,
                          version: int | None, payload: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
        """Start (once) the child playbook a remote worker's command calls; returns its id and path.
        ``secrets``: the values the worker resolved for the command so far, which this server learns
        only with the command's report; the child's log redacts them from its first event."""
        cached = await self.core.cached(execution_id)
        if cached is None:
            raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
        ancestry = await stored_ancestry(self.core.store, execution_id)
        check_child_call(ancestry, path)
        loaded, text, _ = await cached.services._resolve_child(path, version)
        child = loaded.require()
        check_child_call(ancestry, child.path)
        child_id = child_execution_id(command_id, call_index)
        if await self.core.store.get_execution(child_id) is None:
            await self.core.submit(playbook_text=text, source=f"catalog://{child.path}", payload=dict(payload),
                                   parent_execution_id=execution_id, execution_id=child_id,
                                   strict=cached.state.strict,
                                   secrets=cached.services.redactor.secrets | frozenset(secrets))
        return {"execution_id": child_id, "path": child.path,
                "steps": sorted(child.step_map())}

    async def status(self, execution_id: str) -> dict[str, Any]:
        return await load_status(self.core.store, execution_id)


def shippable_secrets(known: frozenset[str]) -> list[str]:
    """What a remote worker redacts in the results it stores by reference: the values its execution's
    log redacts (the command's context holds them anyway: keychain, `secret.NAME`, results that
    were sealed), except this server's own settings (its database password, key and tokens), which
    a worker without database credentials must never learn."""
    from noetl.secrets import Redactor
    from noetl.settings import sensitive_setting_values

    return sorted(known - Redactor(sensitive_setting_values()).secrets)
