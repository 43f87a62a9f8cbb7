"""The decision core of the distributed runtime: append the event, fold, decide, queue, commit.

Every decision runs in the PostgreSQL transaction that records the event that triggered it:

1. lock the execution row (``FOR UPDATE``): decisions for one execution are serialised across every
   server and worker process, while different executions progress in parallel;
2. check the reported command is still leased by the reporter with the same attempt (otherwise the
   report is a duplicate or comes from a worker that lost its lease, and is ignored);
3. bring the cached state up to date by folding only the events newer than the cache;
4. ``engine.handle``; append the resulting events, queue the new commands, mark the command done;
5. commit (with a NOTIFY so idle workers wake up at once).

A worker deciding (``affinity``) inserts as many of the new commands as it has free slots already
leased to itself (attempt 1, the usual lease expiry) and starts them once the decision committed,
with the state it just folded: a chain's next step needs no NOTIFY, no lease and no catch-up read.
These are ordinary leased rows: heartbeats extend them and the reaper re-queues them after a crash.

A crash anywhere before the commit loses nothing (the command's lease expires and it runs again);
after it, nothing is decided twice. The in-process cache is an optimisation only: any failure drops
the execution's entry and the next decision rebuilds it from the event log.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from noetl.backoff import backoff_delay
from noetl.clock import Clock, iso, utc_now
from noetl.dsl.model import Playbook
from noetl.engine import events as ev
from noetl.engine.commands import Command
from noetl.engine.decide import Engine
from noetl.engine.events import Event
from noetl.engine.resume import RESUMABLE_STATUSES, resume_event
from noetl.engine.state import ExecutionState, LoopRun, apply
from noetl.engine.status import StatusFolder
from noetl.errors import InputError, NotFoundError, StoreError
from noetl.ids import new_execution_id
from noetl.results.refs import forget_reports, note_report
from noetl.runtime.execution import (
    cancel_event,
    execution_result,
    final_update,
    payload_was_redacted,
    stamp,
    started_payload,
    stored_payload,
)
from noetl.runtime.playbooks import ParsedPlaybooks
from noetl.runtime.request import RunRequest, StartOptions
from noetl.runtime.sealing import seal_commands, unsealed, unsealed_payload
from noetl.runtime.services import ExecutionServices
from noetl.store.base import ExecutionRecord
from noetl.store.postgres.decisions import (
    DecisionStatements,
    DecisionWrite,
    Lease,
    LockedExecution,
    NewCommandLeases,
    leased_to,
)
from noetl.store.postgres.ids import db_id
from noetl.store.postgres.queue import LeasedCommand, lease_ids
from noetl.store.postgres.rows import event_rows, execution_params
from noetl.store.postgres.stats import StepStats
from noetl.store.postgres.store import Connection, PostgresStore, is_transient

if TYPE_CHECKING:
    from noetl.runtime.runner import Runner

MAX_CACHED_EXECUTIONS = 2000
# Reports of one execution decided in one transaction at most, and reports of all the executions
# of one group transaction (bound the transaction's size and lock time).
MAX_BATCH = 256
MAX_GROUP_REPORTS = 512
# Group transactions a process runs at once: reports arriving meanwhile wait and share the next one.
# One: while a transaction waits for its COMMIT's fsync, the reports that arrive meanwhile gather
# into the next; a second writer would split them into two smaller transactions (more COMMITs, WAL
# fsyncs and per-transaction Python for the same work; see bench/results/distributed.md).
GROUP_WRITERS = 1
# Tries of a cancel that meets transient store failures (backing off 0.1, 0.2, 0.4, 0.8 s between them).
CANCEL_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class FirstWrite:
    """What a new execution's first statement stores: its row, first events and first commands."""

    execution: dict[str, Any]
    events: list[list[Any]]
    commands: list[Command]
    now: str


@dataclass(slots=True)
class CachedExecution:
    """One execution as this process last saw it: its engine and the state folded so far."""

    execution_id: str
    playbook: Playbook
    playbook_text: str
    engine: Engine
    services: ExecutionServices
    state: ExecutionState = field(default_factory=ExecutionState)
    last_event_id: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Reports waiting for the next decision transaction (see DecisionCore._decide).
    pending: list[PendingReport] = field(default_factory=list)
    # Set when a decision failed after changing `state`: the state may hold events that were never
    # committed, so whoever waited on `lock` must load a fresh entry instead of using this one.
    broken: bool = False
    # Set while a group transaction decides reports of this execution (see DecisionCore._decide).
    group_done: asyncio.Event | None = None
    # What runs this execution's commands in a worker: built once, not per command (it holds the
    # playbook's per-step settings and no state of a run).
    runner: Runner | None = None

    def fold(self, event: Event) -> None:
        """Apply one event read from the log, as its step produced it: the log holds a result (or
        `playbook.initialized`'s workload) that contains a secret redacted, and sealed beside it."""
        apply(self.state, unsealed(event, self.services.redactor))
        self.last_event_id = event.event_id


@dataclass(slots=True, eq=False)
class PendingReport:
    """A report (or a cancellation, with no lease) waiting to be decided; ``outcome`` is set once it
    was: recorded or not, or the error to raise to the reporter."""

    event: Event
    leased: LeasedCommand | None
    outcome: bool | BaseException | None = None
    recorded: Event | None = None  # the report as the engine recorded it (the decision's first event)


@dataclass(slots=True)
class GroupMember:
    """One execution's share of a group transaction: its reports and the commands claimed for them."""

    cached: CachedExecution
    batch: list[PendingReport]
    claim: Claim
    locked: bool = False  # holds cached.lock


@dataclass(slots=True)
class Handled:
    """A report after engine.handle: the events it caused (encoded as rows) and the commands."""

    report: PendingReport
    events: list[Event]
    rows: list[list[Any]]
    commands: list[Command]


class Affinity(Protocol):
    """A worker that runs the new commands of its own decisions while it has free slots."""

    name: str

    def lease_seconds(self) -> float: ...

    def reserve(self, wanted: int) -> int:
        """Reserve up to ``wanted`` free slots; return how many were reserved."""

    def unreserve(self, count: int) -> None:
        """Give back reserved slots (the decision did not commit)."""

    def start_leased(self, leased: list[LeasedCommand]) -> None:
        """Run commands inserted leased to this worker (their slots were reserved)."""


@dataclass(slots=True)
class Claim:
    """The commands a decision transaction inserts leased to the deciding worker: the first ``count``
    of ``write``'s new commands. Their lease payloads are built (an encode and decode of each row) only
    once the transaction committed, by :meth:`leased`: not while the execution's row lock is held,
    which bounds how fast the decisions of one execution (a loop's reports) follow one another."""

    count: int = 0
    write: DecisionWrite | None = None

    def leased(self, owner: str) -> list[LeasedCommand]:
        return leased_to(self.write, owner) if self.count and self.write is not None else []


class UnstorableReport(StoreError):
    """A report whose events cannot be stored (e.g. a result that is not JSON): only its reporter
    gets the error; the rest of the batch is decided again without it."""

    def __init__(self, report: PendingReport, message: str) -> None:
        super().__init__(message)
        self.report = report


def command_from_lease(leased: LeasedCommand, cached: CachedExecution) -> Command:
    payload = unsealed_payload(leased.payload)
    local = payload.get("local") or {}
    return Command(
        command_id=leased.command_id, execution_id=leased.execution_id, step=leased.step,
        tasks=payload.get("tasks") or [{"kind": "noop"}], context=cached.engine.context(cached.state, local),
        local=local, args=payload.get("args") or {}, arc_input=payload.get("arc_input") or {},
        loop_index=payload.get("loop_index"), entry=int(payload.get("entry") or 1), timeout=payload.get("timeout"),
        attempt=leased.attempt, cursor=payload.get("cursor"),
        strict=bool(payload.get("strict")), warnings=payload.get("warnings") or [],
    )


class DecisionCore:
    """Submits executions and turns reports into decisions, transactionally, on one PostgreSQL store."""

    def __init__(self, store: PostgresStore, *, clock: Clock = utc_now, services_factory: Any = None,
                 owner: str = "", affinity: Affinity | None = None) -> None:
        self.store = store
        self.statements = DecisionStatements(store)
        self.clock = clock
        self.affinity = affinity
        # Step runs recorded by this process, for /metrics (flushed by the reaper's loop).
        self.stats = StepStats(owner or f"{socket.gethostname()}-{os.getpid()}")
        # Builds the per-execution services (credentials, child playbooks); workers pass their own.
        self.services_factory = services_factory or _default_services
        self._executions: OrderedDict[str, CachedExecution] = OrderedDict()
        # Executions with reports waiting for a decision, and the slots of group transactions.
        self._ready: dict[str, CachedExecution] = {}
        self._writers = asyncio.Semaphore(GROUP_WRITERS)
        self._loading: dict[str, asyncio.Future[CachedExecution | None]] = {}
        self._playbooks = ParsedPlaybooks()

    # submitting ------------------------------------------------------------------------
    async def submit(self, *, playbook_text: str, source: str = "<api>", payload: dict[str, Any] | None = None,
                     merge: bool = False, parent_execution_id: str | None = None,
                     execution_id: str | None = None, start: StartOptions | None = None,
                     strict: bool = False, secrets: frozenset[str] = frozenset()) -> str:
        """Start an execution: its first events and commands are committed together. ``start``
        carries a schedule's fire time or a rerun's origin and reused steps (Engine.start);
        ``strict`` makes undefined template names errors; ``secrets``: a child's, its parent's
        secret values (RunRequest.secrets)."""
        playbook = await self._playbooks.parsed(playbook_text, source)
        execution_id = execution_id or new_execution_id()
        options = start or StartOptions()
        cached = await self._new_cached(execution_id, playbook, playbook_text, payload or {}, parent_execution_id,
                                        secrets | options.secrets)
        # The first decision, its redaction and encoding cost CPU in proportion to the payload (a
        # million-item list is about a second): in a thread, the server's event loop keeps answering
        # other clients meanwhile.
        first = await asyncio.to_thread(
            self._first_write, cached, payload=payload, merge=merge, parent_execution_id=parent_execution_id,
            options=options, strict=strict)
        # One statement: the row, the first events and commands share one round trip and one COMMIT.
        await self.statements.start(execution_id, first.execution, first.events, first.commands, now=first.now)
        cached.last_event_id = len(first.events)
        if not cached.state.finished:
            self._remember(cached)
        return execution_id

    def _first_write(self, cached: CachedExecution, *, payload: dict[str, Any] | None, merge: bool,
                     parent_execution_id: str | None, options: StartOptions, strict: bool) -> FirstWrite:
        """A new execution's first decision, stamped, redacted and encoded as rows (no I/O)."""
        execution_id, playbook = cached.execution_id, cached.playbook
        decision = cached.engine.start(cached.state, execution_id=execution_id, payload=payload, merge=merge,
                                       parent_execution_id=parent_execution_id, meta=options.meta,
                                       entry_step=options.entry_step, entry_input=options.entry_input,
                                       reused=options.reused, strict=strict)
        events = self._stamp(cached, decision.events)
        seal_commands(decision.commands, cached.services.redactor)
        record = ExecutionRecord(
            execution_id=execution_id, path=playbook.path, status="running",
            parent_execution_id=parent_execution_id, playbook=cached.playbook_text,
            payload=stored_payload(payload or {}, cached.services.redactor),
            started_at=events[0].created_at,
        )
        if cached.state.finished:
            record.status, record.result, record.error = cached.state.status, execution_result(cached.state), cached.state.error
            record.ended_at = events[-1].created_at
        return FirstWrite(execution_params(record), event_rows(execution_id, events), decision.commands,
                          events[-1].created_at)

    # reports ---------------------------------------------------------------------------
    async def report(self, leased: LeasedCommand, event: Event) -> bool:
        """Record a command's outcome and decide what follows. False when the report was ignored."""
        cached = await self.cached(leased.execution_id)
        if cached is None:
            return False
        return await self._decide(cached, PendingReport(event, leased))

    async def cancel(self, execution_id: str, reason: str = "cancelled by request") -> dict[str, Any]:
        """Record the cancellation (and cancel running children). A transient store failure (a
        deadlock, a lost connection, a pool busy for longer than its timeout) is tried again, up to
        CANCEL_ATTEMPTS times: an operator's cancel is not refused because the database was busy."""
        for attempt in range(1, CANCEL_ATTEMPTS + 1):
            try:
                cancelled = await self._record_cancel(execution_id, reason)
                break
            except StoreError as exc:
                if attempt == CANCEL_ATTEMPTS or not is_transient(exc):
                    raise
                await asyncio.sleep(backoff_delay(attempt, delay=0.1, max_delay=2.0))
        record = await self.store.get_execution(execution_id)
        # Also when this call recorded nothing: a try after a lost COMMIT that went through, or a
        # cancel whose children were not all reached, finds the execution cancelled already.
        if cancelled or (record is not None and record.status == "cancelled"):
            for child in await self.store.list_executions(parent_execution_id=execution_id, status="running"):
                await self.cancel(child.execution_id, f"parent {execution_id} cancelled")
        return {"execution_id": execution_id, "status": record.status if record else "unknown",
                "cancelled": cancelled}

    async def _record_cancel(self, execution_id: str, reason: str) -> bool:
        cached = await self.cached(execution_id)
        if cached is None:
            raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
        return await self._decide(cached, PendingReport(cancel_event(execution_id, reason), None))

    async def leased_command(self, leased: LeasedCommand) -> tuple[CachedExecution, Command] | None:
        """The command a worker leased, with the execution's cache caught up to the decision that
        queued it; None when the execution is unknown or has finished meanwhile (cancelled, failed:
        a report would be ignored anyway)."""
        cached = await self.cached(leased.execution_id)
        if cached is None:
            return None
        await self.refresh(cached, int(leased.payload.get("as_of") or 1 << 62))
        if cached.state.finished:
            return None
        if leased.row_id is not None and _member_reported(cached.state, leased):
            return None  # a batch row run again: this member's report is in the log already
        return cached, command_from_lease(leased, cached)

    async def resume(self, execution_id: str) -> dict[str, Any]:
        """Continue a failed or cancelled execution in place: ``execution.resumed`` (built from its log,
        see engine/resume.py) reopens it, and the steps and loop iterations that did not end well are
        queued again, in one transaction that also sets the row back to running. Refused (InputError)
        for an execution that is running or completed."""
        record = await self.store.get_execution(execution_id)
        if record is None:
            raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
        if record.status not in RESUMABLE_STATUSES:
            raise InputError(f"execution {execution_id} is {record.status}: only a failed or cancelled "
                             "execution can be resumed")
        log = [event async for page in self.store.iter_events(execution_id) for event in page]
        self._forget(execution_id)  # a cached finished state would be folded twice
        cached = await self.cached(execution_id)
        if cached is None:
            raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
        event = resume_event(execution_id, log)
        async with cached.lock:
            resumed = await self.store.write(f"resuming execution {execution_id}",
                                             partial(self._resume_in_transaction, cached=cached, event=event),
                                             pipeline=True)
        if not resumed:
            raise InputError(f"execution {execution_id} was resumed (or changed) by someone else meanwhile")
        return {"execution_id": execution_id, "status": "running", "resumed": True}

    async def _resume_in_transaction(self, conn: Connection, cached: CachedExecution, event: Event) -> bool:
        locked = await self.statements.lock(conn, cached.execution_id, [])
        if locked is None or locked.status not in RESUMABLE_STATUSES:
            return False
        await self._catch_up(conn, cached, locked.last_event_id)
        handled = self._handle_all(cached, [PendingReport(event, None)], reopening=True)
        await self.statements.record(conn, [self._decision_write(cached, handled, reopen=True)],
                                     lease_now=self.clock())
        return True

    async def _decide(self, cached: CachedExecution, report: PendingReport) -> bool:
        """Queue the report on its execution; return once a decision transaction has handled it.

        Reports are decided in groups (group commit): whoever gets one of the GROUP_WRITERS slots
        decides every report queued so far, for every execution that is not being decided already,
        in one transaction. Reports that arrive while decisions run share the next transaction
        instead of each paying for one, whether they belong to one execution (a loop) or to many
        (chains of steps of concurrent executions).
        """
        cached.pending.append(report)
        self._ready[cached.execution_id] = cached
        while report.outcome is None:
            if cached.broken:
                # A decision failed mid-way and the entry was dropped: queue on a freshly loaded one.
                fresh = await self.cached(cached.execution_id)
                if fresh is None:
                    return False
                cached = fresh
                cached.pending.append(report)
                self._ready[cached.execution_id] = cached
                continue
            async with self._writers:
                if report.outcome is None and not cached.broken:
                    await self._decide_ready()
            deciding = cached.group_done
            if report.outcome is None and deciding is not None:
                await deciding.wait()  # a group that took an earlier batch of this execution is deciding it
        if isinstance(report.outcome, BaseException):
            raise report.outcome
        return report.outcome

    async def _decide_ready(self) -> None:
        """Decide the queued reports of every ready execution whose lock is free, in one transaction.

        Each member's entry lock is held for the transaction. On failure every member's entry is
        marked broken (its state may hold events that were never committed). A report whose events
        cannot be stored gets that error alone and the others go round again; any other failure is
        every report's (each reporter retries as it sees fit). A cancellation of the deciding task
        leaves the other reports to be decided again.
        """
        group = self._take_group()
        if not group:
            return
        done = asyncio.Event()
        for member in group:
            member.cached.group_done = done
        reports = sum(len(member.batch) for member in group)
        try:
            for member in group:  # in lock order; only refresh() competes, and it holds no other lock
                await member.cached.lock.acquire()
                member.locked = True
            outcomes = await self.store.write(
                f"recording {reports} report(s) for {len(group)} execution(s)",
                partial(self._decide_group_in_transaction, group=group), pipeline=True)
        except BaseException as exc:
            self._group_failed(group, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for member, member_outcomes in zip(group, outcomes, strict=True):
                self._group_member_done(member, member_outcomes)
        finally:
            for member in group:
                member.cached.group_done = None
                if member.locked:
                    member.cached.lock.release()
            done.set()

    def _take_group(self) -> list[GroupMember]:
        """Ready executions that no other group is deciding, each with up to MAX_BATCH of its reports,
        MAX_GROUP_REPORTS in all, in the lock order of the transaction (execution id). Chosen without
        yielding to the event loop, so two groups never share an execution."""
        group: list[GroupMember] = []
        total = 0
        for execution_id, cached in list(self._ready.items()):
            if total >= MAX_GROUP_REPORTS:
                break
            if not cached.pending or cached.broken:
                del self._ready[execution_id]
                continue
            if cached.group_done is not None:
                continue
            del self._ready[execution_id]
            take = min(MAX_BATCH, MAX_GROUP_REPORTS - total)
            batch, cached.pending = cached.pending[:take], cached.pending[take:]
            if cached.pending:
                self._ready[execution_id] = cached
            group.append(GroupMember(cached, batch, Claim()))
            total += len(batch)
        group.sort(key=lambda member: db_id(member.cached.execution_id))
        return group

    def _group_failed(self, group: list[GroupMember], exc: BaseException) -> None:
        for member in group:
            if member.claim.count and self.affinity is not None:
                self.affinity.unreserve(member.claim.count)
            member.cached.broken = True
            self._forget(member.cached.execution_id)
            if isinstance(exc, UnstorableReport):
                continue
            if isinstance(exc, Exception):
                for report in member.batch:
                    report.outcome = exc
        if isinstance(exc, UnstorableReport):
            exc.report.outcome = exc  # only its reporter fails; the others are decided again

    def _group_member_done(self, member: GroupMember, outcomes: list[bool]) -> None:
        if member.claim.count and self.affinity is not None:
            self.affinity.start_leased(member.claim.leased(self.affinity.name))
        for report, outcome in zip(member.batch, outcomes, strict=True):
            report.outcome = outcome
            if outcome and report.leased is not None:
                self._observe(report.recorded or report.event)
        if member.cached.state.finished:
            self._forget(member.cached.execution_id)

    def _observe(self, event: Event) -> None:
        """Count a recorded step run for /metrics (the engine may have turned a call.done into a
        call.error, e.g. when the step's `set` failed: the event says how it ended)."""
        duration = event.meta.get("duration")
        self.stats.observe("completed" if event.event_type == ev.CALL_DONE else "failed",
                           float(duration) if isinstance(duration, int | float) else None)

    async def _decide_group_in_transaction(self, conn: Connection, group: list[GroupMember]) -> list[list[bool]]:
        """Lock every member's execution and reported commands, then for each member: check the
        leases, catch up and handle its reports in order; write every member's decision in one
        statement, and COMMIT once for all. Returns, per member and report, whether it was recorded
        (not: a duplicate, a lost lease, a finished execution)."""
        locked = await self.statements.lock_many(
            conn, [m.cached.execution_id for m in group], [c for m in group for c in _command_ids(m.batch)])
        writes: list[DecisionWrite] = []
        finished: list[str] = []
        outcomes = [await self._decide_member(conn, member, locked.get(member.cached.execution_id),
                                              writes, finished) for member in group]
        await self.statements.record(conn, writes, lease_now=self.clock())
        for execution_id in finished:  # after the insert: new commands of a finished execution too
            await self.statements.cancel_open_commands(conn, execution_id)
        return outcomes

    async def _decide_member(self, conn: Connection, member: GroupMember, locked: LockedExecution | None,
                             writes: list[DecisionWrite], finished: list[str]) -> list[bool]:
        """Check the member's leases, catch up and handle its reports: its decision joins ``writes``,
        and its id joins ``finished`` once the execution ended."""
        cached, batch = member.cached, member.batch
        if locked is None:
            return [False] * len(batch)
        valid = _valid_reports(batch, locked.leases)
        if locked.status != "running":
            await self.statements.finish_commands(conn, _command_ids(valid), "cancelled")
            return [False] * len(batch)
        await self._catch_up(conn, cached, locked.last_event_id)
        valid = [report for report in valid if not _reported_before(cached.state, report)]
        handled = self._handle_all(cached, valid)
        recorded = {id(h.report) for h in handled}
        if handled:
            writes.append(self._decision_write(cached, handled, member.claim))
        if cached.state.finished:
            finished.append(cached.execution_id)
        # Not recorded as the execution ended meanwhile: the command is cancelled (a batch row's too,
        # by cancel_open_commands, once the transaction's inserts are in).
        await self.statements.finish_commands(
            conn, _command_ids([r for r in valid if id(r) not in recorded and not _in_batch(r)]), "cancelled")
        return [id(report) in recorded for report in batch]

    def _handle_all(self, cached: CachedExecution, reports: list[PendingReport], *,
                    reopening: bool = False) -> list[Handled]:
        """engine.handle each report in turn (none after the execution finished) and encode the events
        at once, so a report whose events cannot be stored is known by name."""
        handled = []
        try:
            for report in reports:
                if cached.state.finished and not reopening:
                    break
                note_report(report.event)  # a loop's last reports are readable before they are stored
                decision = cached.engine.handle(cached.state, report.event)
                events = self._stamp(cached, decision.events)
                seal_commands(decision.commands, cached.services.redactor)
                try:
                    rows = event_rows(cached.execution_id, events)
                except StoreError as exc:
                    raise UnstorableReport(report, str(exc)) from exc
                report.recorded = events[0] if events else None
                handled.append(Handled(report, events, rows, decision.commands))
        finally:
            forget_reports(cached.execution_id)
        return handled

    async def _catch_up(self, conn: Connection, cached: CachedExecution, last_event_id: int) -> None:
        """Fold the events other processes appended since this cache last saw the execution."""
        while cached.last_event_id < last_event_id:  # a page at a time: bounded memory on a long log
            for event in await self.statements.events_after(conn, cached.execution_id, cached.last_event_id):
                cached.fold(event)

    def _decision_write(self, cached: CachedExecution, handled: list[Handled], claim: Claim | None = None, *,
                        reopen: bool = False) -> DecisionWrite:
        """What the decision writes (DecisionStatements.record writes it, with the other decisions of
        its transaction, in one statement that goes out with the COMMIT).

        The execution row is locked and the cache caught up, so the event ids are known here. With an
        ``affinity``, the new commands the worker has free slots for are inserted leased to it and
        listed in ``claim`` (started by the caller once the transaction committed).
        """
        state = cached.state
        events = [event for h in handled for event in h.events]
        now = events[-1].created_at if events else iso(self.clock())
        update = final_update(state, cached.services.redactor, now)
        if update is None and reopen:
            update = {"status": "running", "result": None, "error": None, "ended_at": None}
        write = DecisionWrite(
            execution_id=cached.execution_id, rows=[row for h in handled for row in h.rows],
            first_event_id=cached.last_event_id + 1, now=now, update=update,
            commands=[command for h in handled for command in h.commands],
            done_ids=_done_rows(state, [h.report for h in handled]))
        cached.last_event_id += len(write.rows)
        write.as_of = cached.last_event_id
        if claim is not None and self.affinity is not None:
            self._claim_new_commands(cached, write, claim)
        return write

    def _claim_new_commands(self, cached: CachedExecution, write: DecisionWrite, claim: Claim) -> None:
        """Reserve the deciding worker's free slots for the first new commands (they are inserted
        leased to it), or none once the execution finished."""
        assert self.affinity is not None
        if claim.count:  # a previous try of this transaction reserved slots: start afresh
            self.affinity.unreserve(claim.count)
            claim.count, claim.write = 0, None
        wanted = len(write.commands) if not cached.state.finished else 0
        count = self.affinity.reserve(wanted) if wanted else 0
        if count:
            write.leases = NewCommandLeases(count=count, owner=self.affinity.name,
                                            seconds=float(self.affinity.lease_seconds()))
            claim.count, claim.write = count, write

    def _stamp(self, cached: CachedExecution, events: list[Event]) -> list[Event]:
        return stamp(events, self.clock(), cached.services.redactor)

    # the per-process cache ---------------------------------------------------------------
    async def cached(self, execution_id: str) -> CachedExecution | None:
        """The execution's engine and state, loaded from the store on a miss (None when unknown).

        Concurrent misses share one load: the commands of a new execution arrive together, and they
        must end up on the same entry (one lock, one batch of reports).
        """
        cached = self._executions.get(execution_id)
        if cached is not None and not cached.broken:
            self._executions.move_to_end(execution_id)
            return cached
        loading = self._loading.get(execution_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(execution_id))
            self._loading[execution_id] = loading
            loading.add_done_callback(partial(self._loaded, execution_id))
        return await asyncio.shield(loading)  # a cancelled caller does not cancel the others' load

    async def _load(self, execution_id: str) -> CachedExecution | None:
        record = await self.store.get_execution(execution_id)
        if record is None:
            return None
        playbook = await self._playbooks.parsed(record.playbook, f"execution {execution_id}")
        payload = await self._started_payload(record)
        cached = await self._new_cached(execution_id, playbook, record.playbook, payload, record.parent_execution_id)
        self._remember(cached)
        return cached

    async def _started_payload(self, record: ExecutionRecord) -> dict[str, Any]:
        """The payload the execution started with (its row stores it redacted; the log's first event
        has it sealed). The log is read only when the row's copy was redacted."""
        if not payload_was_redacted(record.payload):
            return record.payload
        first = await self.store.list_events(record.execution_id, limit=1)
        return started_payload(record.payload, first[0] if first else None)

    def _loaded(self, execution_id: str, loading: asyncio.Future[CachedExecution | None]) -> None:
        if self._loading.get(execution_id) is loading:
            del self._loading[execution_id]
        if not loading.cancelled():
            loading.exception()  # retrieved here too, in case every caller was cancelled meanwhile

    async def refresh(self, cached: CachedExecution, as_of: int) -> None:
        """Catch the cached state up with the log up to event ``as_of`` at least (outside any
        decision), e.g. before running a command. The commands of a new execution are leased
        together, and each waits here for the lock: the first reads the log, the others need not."""
        if cached.last_event_id >= as_of:
            return
        async with cached.lock:
            if cached.last_event_id >= as_of:
                return
            async for events in self.store.iter_events(cached.execution_id, after_id=cached.last_event_id):
                for event in events:
                    cached.fold(event)

    async def _new_cached(self, execution_id: str, playbook: Playbook, text: str, payload: dict[str, Any],
                          parent_execution_id: str | None, secrets: frozenset[str] = frozenset()) -> CachedExecution:
        parent = self._executions.get(parent_execution_id) if parent_execution_id else None
        if parent is not None:  # a child rebuilt here: what its parent knows is secret stays so
            secrets = secrets | parent.services.redactor.secrets
        request = RunRequest(playbook=playbook, playbook_text=text, payload=payload,
                             parent_execution_id=parent_execution_id, execution_id=execution_id, secrets=secrets)
        services = self.services_factory(self, request, execution_id)
        await services.prepare()
        engine = Engine(playbook, globals_layer=services.globals_layer(), playbook_text=text)
        return CachedExecution(execution_id, playbook, text, engine, services)

    def _remember(self, cached: CachedExecution) -> None:
        self._executions[cached.execution_id] = cached
        while len(self._executions) > MAX_CACHED_EXECUTIONS:
            oldest_id, oldest = next(iter(self._executions.items()))
            if oldest.lock.locked():
                break  # in use: let the cache run over its size for a moment
            self._executions.pop(oldest_id)

    def _forget(self, execution_id: str) -> None:
        cached = self._executions.pop(execution_id, None)
        if cached is not None and not cached.state.finished:
            cached.broken = True  # evicted mid-run: waiters reload rather than decide on it

    def forget_finished(self, execution_id: str) -> None:
        cached = self._executions.get(execution_id)
        if cached is not None and cached.state.finished:
            self._executions.pop(execution_id, None)

    def now(self) -> datetime:
        return self.clock()


# The events the status document is folded from (StatusFolder ignores the others, except for the
# template warnings any event may carry, which are read too): a loop's call reports need not be read
# to answer a status request. The distributed conformance tests check the result against the fold of
# the whole log.
STATUS_EVENT_TYPES = (ev.PLAYBOOK_INITIALIZED, ev.STEP_ENTER, ev.STEP_EXIT, ev.PLAYBOOK_COMPLETED,
                      ev.PLAYBOOK_FAILED, ev.EXECUTION_CANCELLED, ev.EXECUTION_RESUMED, ev.STEP_REUSED)


async def load_status(store: PostgresStore, execution_id: str) -> dict[str, Any]:
    """The execution's status document (SPEC section 10), read a page at a time."""
    folder = StatusFolder()
    async for events in store.iter_events(execution_id, types=STATUS_EVENT_TYPES, or_warned=True):
        for event in events:
            folder.apply(event)
    return folder.doc


def _command_ids(reports: list[PendingReport]) -> list[str]:
    """The queue rows the reports hold leases of (a batch row once)."""
    return lease_ids([r.leased for r in reports if r.leased is not None])


def _in_batch(report: PendingReport) -> bool:
    return report.leased is not None and report.leased.row_id is not None


def _reported_before(state: ExecutionState, report: PendingReport) -> bool:
    """A batch member whose iteration the log already holds a report of: its row is still leased
    (other members run), so the lease check cannot tell a duplicate (a report retried after a lost
    COMMIT, or a member run again after a crash) from a first report."""
    return report.leased is not None and report.leased.row_id is not None and _member_reported(state, report.leased)


def _member_reported(state: ExecutionState, leased: LeasedCommand) -> bool:
    loop = _open_loop(state, leased)
    index = leased.payload.get("loop_index")
    return loop is None or index in loop.reported or index in loop.kept


def _open_loop(state: ExecutionState, leased: LeasedCommand) -> LoopRun | None:
    """The loop entry a batch member belongs to, while it runs (None once it ended)."""
    run = state.running.get(leased.step)
    if run is None or run.done or run.loop is None or run.entry != int(leased.payload.get("entry") or 1):
        return None
    return run.loop


def _done_rows(state: ExecutionState, reports: list[PendingReport]) -> list[str]:
    """The queue rows the decision marks done: each reported command's, and a batch row once every
    member has reported (or its loop entry ended). A row left leased meanwhile is renewed by its
    worker; after a crash it runs again, and only its unreported members run."""
    done = []
    for report in reports:
        leased = report.leased
        if leased is None:
            continue
        if leased.row_id is not None:
            loop = _open_loop(state, leased)
            if loop is not None and not all(i in loop.reported or i in loop.kept for i in leased.row_members):
                continue
        done.append(leased.lease_id)
    return list(dict.fromkeys(done))


def _valid_reports(batch: list[PendingReport], leases: dict[str, Lease]) -> list[PendingReport]:
    """The reports to decide: cancellations, and reports of commands the reporter still holds (the
    first report of a command only, should one be reported twice in a batch)."""
    valid, seen = [], set()
    for report in batch:
        if report.leased is not None:
            command_id = report.leased.command_id
            lease = leases.get(report.leased.lease_id)
            if command_id in seen or lease is None or not lease.held_by(report.leased):
                continue
            seen.add(command_id)
        valid.append(report)
    return valid


def _default_services(core: DecisionCore, request: RunRequest, execution_id: str) -> ExecutionServices:
    return ExecutionServices(core.store, request, execution_id)


__all__ = ["CachedExecution", "DecisionCore", "StoreError", "command_from_lease", "load_status"]
