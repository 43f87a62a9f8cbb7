"""A distributed worker: lease commands, run their tools, report, heartbeat.

One asyncio task per leased command (up to ``concurrency``). The worker reports through the
decision core in its own PostgreSQL transaction, so the next step is queued the moment this one is
recorded; while the worker has free slots, the new commands of its decisions are inserted leased to
it in that transaction and started at once (see ``DecisionCore``). Wake-ups come from ``LISTEN noetl_commands``; a poll every ``poll_interval`` seconds covers
lost notifications. When PostgreSQL goes away every loop backs off and retries; work leased before
the outage either reports afterwards (reports are idempotent) or is re-run after its lease expires.

Shutdown (SIGTERM/SIGINT): stop leasing, let in-flight commands finish for ``grace_seconds``, then
cancel the rest and hand their commands back to the queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg

from noetl.backoff import backoff_delay
from noetl.engine.events import Event
from noetl.errors import ConnectionRefused, NoetlError, StoreError, ToolError, WorkerError
from noetl.logredact import install_log_redaction
from noetl.logsetup import log_context
from noetl.results.refs import use_loader
from noetl.results.storage import storage_for
from noetl.runtime.childcalls import check_child_call, stored_ancestry
from noetl.runtime.distributed import DecisionCore, UnstorableReport, load_status
from noetl.runtime.frames import run_command
from noetl.runtime.logstream import LogBatcher, store_sink
from noetl.runtime.reaper import Reaper
from noetl.runtime.report import crash_outcome, outcome_event, unstorable_outcome_event
from noetl.runtime.request import RunRequest
from noetl.runtime.runner import Runner
from noetl.runtime.services import ExecutionServices, child_secrets
from noetl.runtime.stopping import sleep_or_stop, until_stopped
from noetl.runtime.warmup import warm_up
from noetl.runtime.wire import child_execution_id
from noetl.sandbox import require_confinement
from noetl.store.postgres.queue import (
    COMMANDS_CHANNEL,
    EXECUTIONS_CHANNEL,
    CommandQueue,
    LeasedCommand,
    lease_ids,
)
from noetl.store.postgres.store import PostgresStore
from noetl.tools.base import ToolCall
from noetl.waiting import event_set_within

log = logging.getLogger("noetl.worker")

MAX_BACKOFF = 5.0
# Connections a worker opens before its first lease (the pool grows to its size on demand). Opening
# a connection costs ~5 ms of CPU here and ~8 ms in PostgreSQL (fork, SCRAM authentication): paid
# at start-up for the few every worker uses at once (the group writer, leases, heartbeats, reads),
# not by the first commands of a burst of new executions.
POOL_CONNECTIONS_AT_START = 4

# The command a tool runs under (each command runs in its own task, so this is per command).
_current_command: contextvars.ContextVar[tuple[str, list[int]] | None] = contextvars.ContextVar(
    "noetl_current_command", default=None)


@dataclass(slots=True)
class WorkerOptions:
    name: str = ""
    concurrency: int = 8
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    max_attempts: int = 3
    reap_interval: float = 5.0
    grace_seconds: float = 30.0
    pool_size: int = 0  # 0: concurrency + 4

    def resolved_name(self) -> str:
        return self.name or f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(self, database_url: str, options: WorkerOptions | None = None) -> None:
        self.options = options or WorkerOptions()
        self.name = self.options.resolved_name()
        self.database_url = database_url
        pool_size = self.options.pool_size or self.options.concurrency + 4
        self.store = PostgresStore(database_url, min_size=min(POOL_CONNECTIONS_AT_START, pool_size),
                                   max_size=pool_size)
        self.core = DecisionCore(self.store, services_factory=self._services, owner=self.name, affinity=self)
        self.log_batcher = LogBatcher(store_sink(self.store))
        self.queue = CommandQueue(self.store)
        self.stop = asyncio.Event()  # leasing ends (SIGTERM, or a side task died)
        self.drained = asyncio.Event()  # every in-flight command has finished and reported
        self.wake = asyncio.Event()
        # An execution this worker runs commands of has ended (a cancel, a failure elsewhere): renew
        # the leases at once, so the work whose lease is gone stops now, not at the next heartbeat.
        self.beat_now = asyncio.Event()
        self.side_tasks: dict[str, asyncio.Task[None]] = {}
        self.side_task_failure: WorkerError | None = None
        self.in_flight: dict[str, tuple[LeasedCommand, asyncio.Task[None]]] = {}
        # Members of batch rows leased from the queue beyond the free slots (a row comes whole): they
        # start as slots free up, their leases renewed meanwhile.
        self.backlog: collections.deque[LeasedCommand] = collections.deque()
        self.waiting_on_children = 0  # commands parked on a child execution free their slot
        self.reserved = 0  # slots held for commands a decision in progress inserts leased to us
        # Commands whose report waits for its decision: their tool is done and their slot goes to
        # whatever that decision inserts leased to us (see reserve), not to the lease loop. A
        # heartbeat never cancels one: its decision may carry other executions' reports too (group
        # commit), and the report of a command whose lease is gone is ignored anyway.
        self.reporting: set[str] = set()
        # Whether the queue may hold commands for us: set by a notification, a poll timeout or a lease
        # that filled every free slot; cleared by a lease that found fewer than it asked for. A slot
        # freed by a finished command leases only then (most steps of a chain never pass through
        # the queue: their decision inserts them leased to us).
        self.queue_may_hold_work = True
        self.own_leases: set[str] = set()  # commands renewing their own lease (cursor loop frames)
        # Held by the worker's heartbeat from choosing its commands until their renewal is stored, and
        # by a frame while it takes over its lease: a renewal already on its way to PostgreSQL must not
        # overwrite a frame's own lease with the worker's. A frame hands its lease back only once its
        # own last renewal is stored (keep_frame_alive), so that needs no lock.
        self.renewing = asyncio.Lock()
        self.completed = 0

    def _services(self, core: DecisionCore, request: RunRequest, execution_id: str) -> ExecutionServices:
        return WorkerServices(self, request, execution_id)

    # lifecycle -------------------------------------------------------------------------
    async def run(self) -> None:
        warm_up()  # before the first lease: see noetl/runtime/warmup.py
        if not await self._open_store():
            log.info("worker %s stopped before PostgreSQL answered", self.name)
            return
        results = storage_for(self.store, shared=True)
        use_loader(results.read, results.read_items, results.read_piece)  # templates resolve `_ref`s through it
        self._start_side_tasks()
        log.info("worker %s started (concurrency %d)", self.name, self.options.concurrency)
        try:
            # Once asked to stop, a lease in progress gets a short grace: PostgreSQL may be down and
            # the lease waiting out the pool's timeout. A lease cut short leaves its commands leased
            # to us until the lease lapses and the reaper re-queues them.
            await until_stopped(self._lease_loop(), self.stop)
            await self._drain()
        finally:
            self.stop.set()
            self.drained.set()  # only now may heartbeats stop: every in-flight command has reported
            self.beat_now.set()
            await self._stop_side_tasks()
            await self.log_batcher.close()
            await self.store.close()
            log.info("worker %s stopped after %d command(s)", self.name, self.completed)
        if self.side_task_failure is not None:
            raise self.side_task_failure

    # side tasks: each named and watched, the worker stops when one of them dies ------------
    def _start_side_tasks(self) -> None:
        reaper = Reaper(self.core, max_attempts=self.options.max_attempts)
        coroutines = {"listener": self._listen(), "heartbeat": self._heartbeat(),
                      "reaper": reaper.run(self.stop, interval=self.options.reap_interval)}
        for name, coroutine in coroutines.items():
            task = asyncio.create_task(coroutine, name=f"noetl-worker-{name}")
            task.add_done_callback(functools.partial(self._side_task_ended, name))
            self.side_tasks[name] = task

    def _side_task_ended(self, name: str, task: asyncio.Task[None]) -> None:
        if self.drained.is_set():
            return  # stopping: side tasks end as they should
        # A side task must outlive the worker's work: without heartbeats every lease lapses and the
        # commands run twice; without the listener or the reaper work waits. Stop rather than limp on.
        error = None if task.cancelled() else task.exception()
        if error is None and self.stop.is_set() and not task.cancelled():
            return  # the reaper ends its rounds once the worker stops leasing
        reason = f"{type(error).__name__}: {error}" if error is not None else "it ended unexpectedly"
        log.error("worker %s: the %s task died (%s); stopping the worker", self.name, name, reason)
        if self.side_task_failure is None:
            self.side_task_failure = WorkerError(f"worker {self.name}: the {name} task died ({reason})")
        self.request_stop()

    async def _stop_side_tasks(self) -> None:
        reaper = self.side_tasks.get("reaper")
        others = [task for name, task in self.side_tasks.items() if name != "reaper"]
        for task in others:
            task.cancel()
        if reaper is not None:
            # The reaper ends its round and flushes the step statistics (unless PostgreSQL hangs).
            await asyncio.wait({reaper}, timeout=5)
            reaper.cancel()
        await asyncio.gather(*self.side_tasks.values(), return_exceptions=True)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    def request_stop(self) -> None:
        self.stop.set()
        self.wake.set()

    async def _open_store(self) -> bool:
        """Whether the store opened: False when the worker was asked to stop while PostgreSQL was
        still unreachable (it then never started)."""
        opened = False

        async def open_store() -> None:
            nonlocal opened
            await self.store.open()
            opened = True

        async for _ in _backoff(self.stop):
            try:
                await until_stopped(open_store(), self.stop)  # a stop while PostgreSQL is down
            except ConnectionRefused:
                raise  # a wrong password or database: retrying would only repeat it
            except StoreError as exc:
                log.warning("worker %s: %s", self.name, exc)
            if opened or self.stop.is_set():
                break
        return opened

    async def _drain(self) -> None:
        tasks = [task for _, task in self.in_flight.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=self.options.grace_seconds)
        leftovers = list(self.in_flight.values())
        for _, task in leftovers:
            task.cancel()
        await asyncio.gather(*(task for _, task in leftovers), return_exceptions=True)
        unstarted = [*(c for c, _ in leftovers), *self.backlog]
        self.backlog.clear()
        if unstarted:  # a batch row goes back whole: only its unreported members run again
            with contextlib.suppress(StoreError):
                await self.queue.release(owner=self.name, command_ids=lease_ids(unstarted))

    # leasing ---------------------------------------------------------------------------
    def _free_slots(self) -> int:
        return (self.options.concurrency - (len(self.in_flight) - self.waiting_on_children) - self.reserved
                - len(self.backlog))

    # the decision core's affinity: commands of our own decisions, leased to us as they are inserted
    def lease_seconds(self) -> float:
        return self.options.lease_seconds

    def reserve(self, wanted: int) -> int:
        """Slots for a decision's new commands: the free ones and those of the commands being
        reported (a busy worker keeps its chains, instead of queueing every next step for whichever
        worker leases it and must then read the execution's log). Each reporter's slot is lent once:
        running commands plus reservations stay within ``concurrency``; for a moment after the
        commit, a reporter and its successor are both in flight."""
        if self.stop.is_set():
            return 0
        count = max(0, min(wanted, self._free_slots() + len(self.reporting)))
        self.reserved += count
        return count

    def unreserve(self, count: int) -> None:
        self.reserved -= count
        self.wake.set()

    def start_leased(self, leased: list[LeasedCommand]) -> None:
        self.reserved -= len(leased)
        for command in leased:
            self._start(command)

    async def _lease_loop(self) -> None:
        failures = 0
        while not self.stop.is_set():
            self.wake.clear()
            free = self._free_slots()
            leased: list[LeasedCommand] = []
            if free > 0 and self.queue_may_hold_work:
                self.queue_may_hold_work = False  # a notification during the lease sets it again
                try:
                    leased = await self.queue.lease(owner=self.name, limit=free,
                                                    lease_seconds=self.options.lease_seconds, now=self.core.now())
                    failures = 0
                except StoreError as exc:
                    self.queue_may_hold_work = True
                    failures += 1
                    log.warning("worker %s: %s", self.name, exc)
                    await sleep_or_stop(self.stop, reconnect_delay(failures + 1))
                    continue
            for command in leased[:max(free, 0)]:
                self._start(command)
            self.backlog.extend(leased[max(free, 0):])
            if leased and len(leased) >= free:
                self.queue_may_hold_work = True
                continue  # probably more waiting: lease again before sleeping
            if not await event_set_within(self.wake, self.options.poll_interval):
                self.queue_may_hold_work = True  # the poll: covers a notification that was lost

    def _execution_ended(self, execution_id: str) -> None:
        running = [leased for leased, _ in self.in_flight.values()] + list(self.backlog)
        if any(str(leased.execution_id) == execution_id for leased in running):
            self.beat_now.set()

    def _work_queued(self) -> None:
        self.queue_may_hold_work = True
        self.wake.set()

    def _start(self, leased: LeasedCommand) -> None:
        task = asyncio.create_task(self._execute(leased))
        self.in_flight[leased.command_id] = (leased, task)
        task.add_done_callback(lambda _: self._finished(leased.command_id))

    def _finished(self, command_id: str) -> None:
        """A command's slot is free: called as its task ends (before the loop runs anything else, so
        the decision of a successor that runs at once finds the slot free) and again by the task's
        done callback (for a task cancelled before it started)."""
        if self.in_flight.pop(command_id, None) is not None:
            self.completed += 1
            if self.backlog and not self.stop.is_set() and self._free_slots() + len(self.backlog) > 0:
                self._start(self.backlog.popleft())
            self.wake.set()

    # running one command ----------------------------------------------------------------
    async def _execute(self, leased: LeasedCommand) -> None:
        try:
            with log_context(execution_id=leased.execution_id, step=leased.step, command_id=leased.command_id):
                try:
                    event = await self._run(leased)
                except StoreError as exc:
                    log.warning("worker %s: command %s not started: %s", self.name, leased.command_id, exc)
                    return  # its lease expires and the reaper re-queues it
                if event is not None:
                    log.debug("worker %s: %s %s", self.name, event.event_type, event.status)
                    await self._report(leased, event)
        finally:
            self._finished(leased.command_id)

    async def _run(self, leased: LeasedCommand) -> Event | None:
        found = await self.core.leased_command(leased)
        if found is None:
            return None
        cached, command = found
        if cached.runner is None:
            cached.runner = Runner(cached.playbook, playbook_dir=None, services=cached.services,
                                   playbook_text=cached.playbook_text)
        runner = cached.runner
        token = _current_command.set((leased.command_id, [0]))
        try:
            outcome = await run_command(runner, command)
        except NoetlError as exc:
            outcome = crash_outcome(exc)
        except Exception as exc:
            outcome = crash_outcome(exc)
        finally:
            _current_command.reset(token)
        cached.services.redactor.add(outcome.secrets)
        return outcome_event(command, outcome, worker=self.name, attempt=leased.attempt)

    async def _report(self, leased: LeasedCommand, event: Event) -> None:
        """Report, retrying through a PostgreSQL outage while the lease could still be ours.

        Retrying is safe: a report that did commit before the connection broke is recognised as a
        duplicate (the command is no longer leased) and ignored.
        """
        self.reporting.add(leased.command_id)
        try:
            await self._report_until_decided(leased, event)
        finally:
            self.reporting.discard(leased.command_id)

    async def _report_until_decided(self, leased: LeasedCommand, event: Event) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.options.lease_seconds * 4
        failures = 0
        while True:  # not tied to `stop`: a draining worker still reports what it finished
            try:
                await self.core.report(leased, event)
                return
            except UnstorableReport as exc:
                event = unstorable_outcome_event(event, exc)  # e.g. a NaN in the result: the step fails
            except StoreError as exc:
                failures += 1
                delay = reconnect_delay(failures)
                if loop.time() + delay > give_up_at:
                    log.error("worker %s: giving up reporting %s: %s", self.name, leased.command_id, exc)
                    return
                log.warning("worker %s: %s (retrying)", self.name, exc)
                await asyncio.sleep(delay)

    # heartbeats and the wake-up channel ------------------------------------------------
    async def _heartbeat(self) -> None:
        """Extend the leases of in-flight commands until the last one has reported.

        Not tied to ``stop``: a draining worker still runs its commands for up to ``grace_seconds``,
        and a lease that lapsed meanwhile would let another worker run the same step again.
        """
        interval = max(self.options.lease_seconds / 3, 0.05)
        while not self.drained.is_set():
            await sleep_or_stop(self.beat_now, interval)
            self.beat_now.clear()
            if self.drained.is_set():
                break
            async with self.renewing:
                ids = lease_ids([leased for command_id, (leased, _) in self.in_flight.items()
                                 if command_id not in self.own_leases] + list(self.backlog))
                if not ids:
                    continue
                try:
                    held = await self.queue.heartbeat(owner=self.name, command_ids=ids,
                                                      lease_seconds=self.options.lease_seconds, now=self.core.now())
                except StoreError as exc:
                    log.warning("worker %s: heartbeat: %s", self.name, exc)
                    continue
            lost = set(ids) - held
            if lost:  # cancelled execution or lease taken over: stop the work (every member of a row)
                for leased, task in list(self.in_flight.values()):
                    if leased.lease_id in lost and leased.command_id not in self.reporting:
                        task.cancel()
                self.backlog = collections.deque(c for c in self.backlog if c.lease_id not in lost)

    @contextlib.asynccontextmanager
    async def keep_frame_alive(self, *, lease_seconds: float | None,
                               heartbeat_seconds: float) -> AsyncIterator[None]:
        """While a cursor loop's frame runs, renew its lease every ``heartbeat_seconds`` for
        ``lease_seconds`` (the frame's own lease, instead of the worker's); a lease found lost
        (cancelled execution, or taken over) stops the frame as the worker's heartbeat would."""
        current = _current_command.get()
        if current is None:
            yield
            return
        command_id, task = current[0], asyncio.current_task()
        lease = lease_seconds or self.options.lease_seconds
        async with self.renewing:
            self.own_leases.add(command_id)
        ended = asyncio.Event()
        beat = asyncio.create_task(self._renew_frame(command_id, lease, heartbeat_seconds, task, ended))
        try:
            yield
        finally:
            ended.set()  # the renewal under way is stored (not cut off half-sent), then the beat stops
            try:
                await asyncio.gather(beat, return_exceptions=True)
            finally:  # cancelled while waiting, the command still goes back to the worker's heartbeat
                self.own_leases.discard(command_id)

    async def _renew_frame(self, command_id: str, lease: float, interval: float,
                           task: asyncio.Task[Any] | None, ended: asyncio.Event) -> None:
        while not ended.is_set():
            try:
                held = await self.queue.heartbeat(owner=self.name, command_ids=[command_id], lease_seconds=lease,
                                                  now=self.core.now())
            except StoreError as exc:
                log.warning("worker %s: frame heartbeat: %s", self.name, exc)
            else:
                if command_id not in held and task is not None:
                    task.cancel()
                    return
            await sleep_or_stop(ended, interval)

    async def _listen(self) -> None:
        async for _ in _backoff(self.stop, forever=True):
            try:
                conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
            except psycopg.Error as exc:
                log.warning("worker %s: listener: %s", self.name, str(exc).strip().splitlines()[0])
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {COMMANDS_CHANNEL}")
                    await conn.execute(f"LISTEN {EXECUTIONS_CHANNEL}")
                    self._work_queued()  # catch up with anything queued while we were not listening
                    async for notice in conn.notifies():
                        if notice.channel == EXECUTIONS_CHANNEL:
                            self._execution_ended(notice.payload)
                        else:
                            self._work_queued()
            except psycopg.Error as exc:
                log.warning("worker %s: listener lost: %s", self.name, str(exc).strip().splitlines()[0])


class WorkerServices(ExecutionServices):
    """Credentials and secrets as on the local runtime; child playbooks go through the queue."""

    shares_results = True

    def __init__(self, worker: Worker, request: RunRequest, execution_id: str) -> None:
        super().__init__(worker.store, request, execution_id)
        self.worker = worker
        self.log_batcher = worker.log_batcher

    def keep_frame_alive(self, *, lease_seconds: float | None,
                         heartbeat_seconds: float) -> contextlib.AbstractAsyncContextManager[None]:
        return self.worker.keep_frame_alive(lease_seconds=lease_seconds, heartbeat_seconds=heartbeat_seconds)

    async def run_child_playbook(self, *, path: str, payload: dict[str, Any], version: int | None,
                                 return_step: str | None, call: ToolCall) -> Any:
        """Submit the child as its own execution and wait for it, without holding a worker slot.

        The child's id is derived from the parent command and the call's position in it, so a
        command re-run after a crash finds the child it already started instead of starting another.
        """
        ancestry = await stored_ancestry(self.worker.store, self.execution_id)
        check_child_call(ancestry, path)
        loaded, text, _ = await self._resolve_child(path, version)
        child = loaded.require()
        check_child_call(ancestry, child.path)
        if return_step and return_step not in child.step_map():
            raise ToolError(f"return_step {return_step!r} is not a step of {child.path!r}", kind="config")
        child_id = self._child_id()
        if await self.worker.store.get_execution(child_id) is None:
            parent = await self.worker.core.cached(self.execution_id)
            with contextlib.suppress(StoreError):  # a concurrent re-run may have submitted it first
                await self.worker.core.submit(playbook_text=text, source=f"catalog://{child.path}",
                                              payload=dict(payload or {}), parent_execution_id=self.execution_id,
                                              execution_id=child_id, strict=parent is not None and parent.state.strict,
                                              secrets=child_secrets(self.redactor, call))
        doc = await self._wait_for(child_id)
        if doc["status"] != "completed":
            raise ToolError(f"child playbook {child.path!r} (execution {child_id}) {doc['status']}: "
                            f"{doc.get('error')}", kind="playbook", details={"child_execution_id": child_id})
        if return_step:
            return (doc["steps"].get(return_step) or {}).get("result")
        return doc["result"]

    def _child_id(self) -> str:
        current = _current_command.get()
        if current is None:
            raise ToolError("a playbook call outside a command", kind="config")
        command_id, counter = current
        counter[0] += 1
        return child_execution_id(command_id, counter[0])

    async def _wait_for(self, child_id: str) -> dict[str, Any]:
        self.worker.waiting_on_children += 1
        self.worker.wake.set()  # our slot is free while we wait
        try:
            polls = 0
            while True:
                record = await self.worker.store.get_execution(child_id)
                if record is not None and record.status != "running":
                    return await load_status(self.worker.store, child_id)
                polls += 1
                await asyncio.sleep(backoff_delay(polls, delay=0.01, max_delay=0.5))
        finally:
            self.worker.waiting_on_children -= 1


async def _backoff(stop: asyncio.Event, *, forever: bool = False) -> AsyncIterator[int]:
    """Yield attempt numbers, sleeping 0.1 s, 0.2 s ... up to MAX_BACKOFF between them.

    Stops when ``stop`` is set, unless ``forever`` (the listener lives until it is cancelled).
    """
    attempt = 0
    while forever or not stop.is_set():
        attempt += 1
        yield attempt
        delay = reconnect_delay(attempt + 1)
        await (asyncio.sleep(delay) if forever else sleep_or_stop(stop, delay))


def reconnect_delay(attempt: int) -> float:
    """0.1 s doubling up to MAX_BACKOFF: how long to wait before reaching the store again."""
    return backoff_delay(attempt, delay=0.1, max_delay=MAX_BACKOFF)


async def run_worker(database_url: str, options: WorkerOptions) -> None:
    install_log_redaction()
    require_confinement()
    worker = Worker(database_url, options)
    worker.install_signal_handlers()
    await worker.run()
