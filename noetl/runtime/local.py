"""The local runtime: one process, the embedded store, the same engine and tools as the workers.

One coroutine owns the execution: it appends each decision's events in one store transaction, then
starts the commands as asyncio tasks; finished commands come back through a queue and become
``call.done`` / ``call.error`` events for the engine. A decision's only command, while no other
runs (each step of a chain), is awaited by that coroutine itself instead: no task, no queue and no
event-loop iteration between the step's decisions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from noetl.clock import Clock, utc_now
from noetl.engine import events as ev
from noetl.engine.commands import Command
from noetl.engine.decide import Decision, Engine
from noetl.engine.events import Event
from noetl.engine.state import ExecutionState, apply
from noetl.engine.status import StatusFolder
from noetl.errors import ExecutionEnded
from noetl.ids import new_execution_id
from noetl.results.refs import forget_reports, note_report, use_loader
from noetl.runtime.effect_free import effect_free
from noetl.runtime.execution import cancel_event, execution_result, final_update, stamp, stored_payload
from noetl.runtime.frames import run_command
from noetl.runtime.logstream import LogBatcher, store_sink
from noetl.runtime.owner import current_owner
from noetl.runtime.report import crash_outcome, outcome_event
from noetl.runtime.request import RunRequest
from noetl.runtime.runner import Outcome, Runner
from noetl.runtime.sealing import unsealed
from noetl.store.base import ExecutionRecord, Store

EventListener = Callable[[Event], None]
MAX_BATCH = 256  # outcomes folded into one store transaction
CANCEL_POLL_SECONDS = 0.25  # how often a run looks for a cancel recorded by another process
# A chain of commands awaited directly may never suspend (a python step's brief wait): at least
# this often, the execution lets the event loop run its other tasks (cancel watcher, log flush, a UI).
YIELD_SECONDS = 0.005
# Decisions about steps without side effects (noetl.runtime.effect_free) are held and stored with the
# next one that must be stored, at most this many and this long: a crash loses at most that much work,
# and `noetl status` from another process sees the run move on at least this often.
HOLD_DECISIONS = 64
HOLD_SECONDS = 0.05


class LocalRuntime:
    """Runs executions in this process against ``store``."""

    def __init__(self, store: Store, *, clock: Clock = utc_now, listener: EventListener | None = None,
                 redactor: Any = None) -> None:
        self.store = store
        self.clock = clock
        self.listener = listener
        self.redactor = redactor
        self._cancelled: set[str] = set()
        self.log_batcher = LogBatcher(store_sink(store), clock=clock)
        self._running = 0  # executions (children included) in run(): the log batcher stops with the last

    async def run(self, request: RunRequest) -> dict[str, Any]:
        """Run to the end; return the status document."""
        execution = _Execution(self, request)
        self._running += 1
        try:
            return await execution.run()
        finally:
            self._running -= 1
            if not self._running:
                # Its flush task would otherwise outlive the run: one per execution in a long-lived
                # process (noetl ui, noetl scheduler), and a warning when the event loop closes.
                await self.log_batcher.close()

    def cancel(self, execution_id: str) -> None:
        self._cancelled.add(execution_id)


class _Execution:
    def __init__(self, runtime: LocalRuntime, request: RunRequest) -> None:
        from noetl.runtime.services import ExecutionServices

        self.runtime = runtime
        self.request = request
        self.execution_id = request.execution_id or new_execution_id()
        self.services = ExecutionServices(runtime.store, request, self.execution_id, run_child=runtime.run)
        self.services.log_batcher = runtime.log_batcher
        self.engine = Engine(request.playbook, globals_layer=self.services.globals_layer(),
                             playbook_text=request.playbook_text or "")
        self.runner = Runner(request.playbook, playbook_dir=request.playbook_dir, services=self.services,
                             playbook_text=request.playbook_text)
        self.state = ExecutionState()
        self.status = StatusFolder()
        # None in the queue means "cancelled from outside".
        self.outcomes: asyncio.Queue[tuple[Command, Outcome] | None] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()
        self.last_event_id = 0
        self._foreign_after: int | None = None  # the last event id before one another process appended
        # The task awaiting a command directly (None otherwise), and whether a cancel arrived: the
        # cancel watcher then interrupts that await as it would cancel a command's task.
        self._direct: asyncio.Task[Any] | None = None
        self._interrupted = False
        self._direct_cancelled = False  # the watcher cancelled that await (and only it may take that back)
        self._ended_elsewhere = False  # the store refused a decision: the execution had ended (a cancel)
        self._yielded_at = 0.0
        self._held: list[Event] = []  # stamped events of decisions not stored yet (HOLD_DECISIONS)
        self._held_decisions = 0
        self._held_since = 0.0
        self._effect_free_ids: set[str] = set()  # issued commands without side effects, not reported yet

    async def run(self) -> dict[str, Any]:
        # templates resolve `_ref`s through it (this task and its own)
        use_loader(self.services.results.read, self.services.results.read_items,
                   self.services.results.read_piece)
        await self.services.prepare()
        if self.request.resume is not None:
            decision = await self._resume(self.request.resume)
        else:
            request = self.request
            decision = self.engine.start(self.state, execution_id=self.execution_id, payload=request.payload,
                                         merge=request.merge, parent_execution_id=request.parent_execution_id,
                                         meta=request.meta, entry_step=request.entry_step,
                                         entry_input=request.entry_input, reused=request.reused,
                                         strict=request.strict)
            await self._record_start(decision.events)
        self._issue(decision.commands)
        lone = self._dispatch(decision.commands)
        watcher = asyncio.create_task(self._watch_for_cancel())
        try:
            while not self.state.finished:
                batch = await self._run_directly(lone) if lone is not None else await self._next_batch()
                if batch is None:
                    await self._adopt_external_cancel()
                    break
                if self.execution_id in self.runtime._cancelled:
                    await self._cancel("cancelled by request")
                    break
                decision = Decision()
                try:
                    for command, outcome in batch:
                        report = self._report_event(command, outcome)
                        note_report(report)  # a loop's last reports are readable before they are stored
                        step = self.engine.handle(self.state, report)
                        decision.events.extend(step.events)
                        decision.commands.extend(step.commands)
                finally:
                    forget_reports(self.execution_id)
                await self._record(decision, hold=self._may_hold(batch, decision))
                # Refused by the store: the execution ended elsewhere (a cancel); start nothing more.
                lone = None if self._ended_elsewhere else self._dispatch(decision.commands)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel("cancelled"))
            raise
        finally:
            watcher.cancel()
            await self._stop_tasks()
        await self._store_held()  # nothing is held once the run ended, but a break may leave some
        return self.status.doc

    def _may_hold(self, batch: list[tuple[Command, Outcome]], decision: Decision) -> bool:
        """Whether ``decision`` may wait to be stored with a later one: it reports only on commands
        without side effects and issues only such commands, so a crash before it is stored loses
        nothing that running them again would not give back. Every other tool runs only after all
        that came before it is stored."""
        reported_free = True
        for command, _ in batch:
            if command.command_id not in self._effect_free_ids:
                reported_free = False
            self._effect_free_ids.discard(command.command_id)
        return self._issue(decision.commands) and reported_free and bool(decision.commands)

    def _issue(self, commands: list[Command]) -> bool:
        """Note which of ``commands`` have no side effects (each is judged once); True if none has."""
        free = True
        for command in commands:
            if effect_free(command):
                self._effect_free_ids.add(command.command_id)
            else:
                free = False
        return free

    async def _next_batch(self) -> list[tuple[Command, Outcome]] | None:
        """Every outcome that is ready (at least one): their events are stored in one transaction."""
        first = await self.outcomes.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH and not self.outcomes.empty():
            item = self.outcomes.get_nowait()
            if item is None:
                self.outcomes.put_nowait(None)  # seen again by the next call
                break
            batch.append(item)
        return batch

    async def _run_directly(self, command: Command) -> list[tuple[Command, Outcome]] | None:
        """The lone command's outcome, awaited here; None when a cancel interrupted it."""
        # time.monotonic, not the loop's clock: asyncio.get_running_loop() makes a getpid system call
        if time.monotonic() - self._yielded_at > YIELD_SECONDS:
            await asyncio.sleep(0)
            self._yielded_at = time.monotonic()
        if self._interrupted:
            return await self._next_batch()
        self._direct = asyncio.current_task()
        try:
            outcome = await self._outcome(command)
        except asyncio.CancelledError:
            if not self._interrupted:
                raise
        finally:
            self._direct = None
        if self._interrupted:
            current = asyncio.current_task()
            if self._direct_cancelled and current is not None:
                self._direct_cancelled = False
                current.uncancel()  # the watcher's cancel, handled here
                if current.cancelling():
                    raise asyncio.CancelledError  # a cancel of the run itself came too: it stops the run
            return await self._next_batch()  # None: the watcher's
        return [(command, outcome)]

    async def _watch_for_cancel(self) -> None:
        while True:
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            if self.execution_id in self.runtime._cancelled:
                self._interrupt()
                return
            record = await self.runtime.store.get_execution(self.execution_id)
            if record is not None and record.status == "cancelled":
                self._interrupt()
                return

    def _interrupt(self) -> None:
        """Wake the execution for a cancel: through the queue, and out of a command it awaits."""
        self._interrupted = True
        self.outcomes.put_nowait(None)
        if self._direct is not None:
            self._direct.cancel()
            self._direct_cancelled = True

    async def _adopt_external_cancel(self) -> None:
        """Fold the cancel another process recorded (or record one asked for in this process)."""
        await self._store_held()
        # The cancel is numbered after this run's last stored event: the store refuses any decision
        # after it (ExecutionEnded); `_foreign_after` marks where another process's events began.
        after = self.last_event_id if self._foreign_after is None else self._foreign_after
        events = await self.runtime.store.list_events(self.execution_id, after_id=after)
        cancels = [e for e in events if e.event_type == ev.EXECUTION_CANCELLED]
        if not cancels:
            await self._cancel("cancelled by request")
            return
        self.engine.handle(self.state, cancels[0])
        self._publish(cancels[:1])

    # events ----------------------------------------------------------------------------
    def _stamp(self, events: list[Event]) -> list[Event]:
        return stamp(events, self.runtime.clock(), self.runtime.redactor or self.services.redactor)

    async def _record_start(self, events: list[Event]) -> None:
        self._stamp(events)
        record = ExecutionRecord(
            execution_id=self.execution_id, path=self.request.playbook.path, status="running",
            parent_execution_id=self.request.parent_execution_id, playbook=self.request.playbook_text,
            payload=stored_payload(self.request.payload, self.runtime.redactor or self.services.redactor),
            started_at=events[0].created_at, owner=current_owner(),
        )
        end = self._end_update(events)  # an execution can end in its first decision (a bad input)
        if end is not None:
            record.status, record.result, record.error, record.ended_at = (
                end["status"], end["result"], end["error"], end["ended_at"])
        stored = await self.runtime.store.create_execution(record, events)
        self._publish(stored)

    async def _resume(self, log: list[Event]) -> Decision:
        """Fold the stored log, then continue it with ``execution.resumed``, if nobody else did."""
        from noetl.engine.resume import RESUMABLE_STATUSES, resume_event
        from noetl.errors import InputError

        for event in log:
            apply(self.state, unsealed(event, self.services.redactor))
        self._publish_replayed(log)
        decision = self.engine.handle(self.state, resume_event(self.execution_id, log))
        events = self._stamp(decision.events)
        update = self._end_update(events) or {"status": "running", "result": None, "error": None, "ended_at": None}
        stored = await self.runtime.store.transition_execution(
            self.execution_id, events, from_statuses=RESUMABLE_STATUSES, update=update, owner=current_owner())
        if stored is None:
            raise InputError(f"execution {self.execution_id} was resumed by another process")
        self._publish(stored)
        return decision

    def _publish_replayed(self, log: list[Event]) -> None:
        """The status document of the stored log, without telling the listener again."""
        for event in log:
            self.last_event_id = max(self.last_event_id, event.event_id)
            self.status.apply(event)

    def _end_update(self, events: list[Event]) -> dict[str, Any] | None:
        return final_update(self.state, self.runtime.redactor or self.services.redactor, events[-1].created_at)

    async def _record(self, decision: Decision, *, hold: bool = False) -> None:
        """Store the decision's events (with any held before it) in one transaction; or, with
        ``hold``, keep them for the next one while the group is small and young (HOLD_DECISIONS)."""
        if not decision.events:
            await self._store_held()
            return
        events = self._stamp(decision.events)
        update = self._end_update(events)
        if hold and update is None and self._hold(events):
            return
        if self._held:
            events = [*self._held, *events]
            self._held, self._held_decisions = [], 0
        self._publish(await self._append(events, update))

    def _hold(self, events: list[Event]) -> bool:
        now = time.monotonic()
        if not self._held:
            self._held_since = now
        elif self._held_decisions >= HOLD_DECISIONS or now - self._held_since > HOLD_SECONDS:
            return False
        self._held.extend(events)
        self._held_decisions += 1
        return True

    async def _store_held(self) -> None:
        if self._held:
            events, self._held, self._held_decisions = self._held, [], 0
            self._publish(await self._append(events))

    async def _append(self, events: list[Event], update: dict[str, Any] | None = None) -> list[Event]:
        """Store ``events``; none when the execution ended elsewhere (another process cancelled it
        since this one last looked): the store refuses them, and the execution then takes that
        end as its own, so that what it reports is what a replay of the log gives."""
        try:
            return await self.runtime.store.append_events(self.execution_id, events, update=update)
        except ExecutionEnded:
            self._ended_elsewhere = True
            if not self._interrupted:
                self._interrupt()
            return []

    def status_result(self) -> Any:
        return execution_result(self.state)

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            if self._foreign_after is None and event.event_id != self.last_event_id + 1:
                self._foreign_after = self.last_event_id  # another process appended (a cancel)
            self.last_event_id = max(self.last_event_id, event.event_id)
            self.status.apply(event)
            if self.runtime.listener is not None:
                self.runtime.listener(event)

    def _report_event(self, command: Command, outcome: Outcome) -> Event:
        if outcome.secrets:
            self.services.redactor.add(outcome.secrets)
        return outcome_event(command, outcome, worker="local")

    # commands --------------------------------------------------------------------------
    def _dispatch(self, commands: list[Command]) -> Command | None:
        """Start the commands as tasks; a lone command while none runs is returned instead, for the
        execution to await itself (nothing else could be decided before its outcome)."""
        if len(commands) == 1 and not self.tasks and self.outcomes.empty():
            return commands[0]
        for command in commands:
            task = asyncio.create_task(self._execute(command))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return None

    async def _execute(self, command: Command) -> None:
        self.outcomes.put_nowait((command, await self._outcome(command)))

    async def _outcome(self, command: Command) -> Outcome:
        try:
            return await run_command(self.runner, command)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return crash_outcome(exc)

    async def _cancel(self, reason: str) -> None:
        if self.state.finished:
            return
        decision = self.engine.handle(self.state, cancel_event(self.execution_id, reason))
        await self._record(decision)

    async def _stop_tasks(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
