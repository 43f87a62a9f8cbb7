"""A worker that talks only to the server's API: it never holds the database password.

``noetl worker start --server-url URL [--token T]`` runs one. It leases, heartbeats and reports
through ``/api/workers/*`` (see :mod:`noetl.runtime.gateway` for the server's side), runs tools
exactly as a database worker does (the same :class:`Runner` and report events), and keeps the same
guarantees: every command runs at least once and its outcome is recorded once; a command whose
worker died is re-run after its lease expires (the server's reaper re-queues it); a report that
reached the server before the connection broke is recognised as a duplicate when retried.

It polls for work (``poll_interval``) instead of listening to PostgreSQL, and leases again at once
whenever a lease filled every free slot. Its side task (the heartbeat) is watched: if it dies the
worker stops rather than keep running commands whose leases nobody extends. On SIGTERM it stops
leasing and keeps heartbeating until the commands it runs are reported (or ``grace_seconds`` pass).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
from typing import Any

import httpx

from noetl.backoff import backoff_delay
from noetl.engine.commands import Command
from noetl.engine.events import Event
from noetl.errors import ErrorInfo, InputError, NoetlError, NotFoundError, ToolError
from noetl.logsetup import log_context
from noetl.results.refs import use_loader
from noetl.results.remote import ServerResultReader, ServerResultUploader
from noetl.runtime.frames import run_command
from noetl.runtime.logstream import LogBatcher
from noetl.runtime.playbooks import ParsedPlaybooks
from noetl.runtime.report import crash_outcome, outcome_event, unstorable_outcome_event
from noetl.runtime.runner import Runner
from noetl.runtime.stopping import sleep_or_stop
from noetl.runtime.warmup import warm_up
from noetl.runtime.wire import decode_context
from noetl.runtime.worker import WorkerOptions, reconnect_delay
from noetl.sandbox import require_confinement
from noetl.secrets import PROCESS_SECRETS, Redactor
from noetl.settings import sensitive_setting_values
from noetl.store.base import LogRecord
from noetl.tools.base import ToolCall
from noetl.waiting import event_set_within

log = logging.getLogger("noetl.worker")

TERMINAL = ("completed", "failed", "cancelled")


class ServerUnavailable(NoetlError):
    """The server did not answer (or answered 5xx): retried with backoff."""


class TokenRefused(InputError):
    """The server refused the worker's token: a configuration mistake, so the worker stops at once."""


class WorkerApi:
    """The HTTP calls a remote worker makes; every answer is JSON."""

    def __init__(self, server_url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(base_url=server_url.rstrip("/"), headers=headers, timeout=timeout)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._call("POST", path, body)

    async def get(self, path: str) -> Any:
        return await self._call("GET", path, None)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        try:
            response = await self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"server unreachable ({type(exc).__name__}): {exc}") from None
        if response.status_code >= 500:
            raise ServerUnavailable(f"server answered {response.status_code} to {path}")
        if response.status_code in (401, 403):
            raise TokenRefused(f"the server at {self.client.base_url} refused this worker's token "
                               f"({response.status_code}): {_message(response)}; pass --token or set "
                               "NOETL_API_TOKEN to a token with the admin role")
        if response.status_code == 404:
            raise NotFoundError(_message(response))
        if response.status_code >= 400:
            raise ToolError(f"{path}: {response.status_code} {_message(response)}", kind="config")
        return response.json()

    async def close(self) -> None:
        await self.client.aclose()


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error") or response.text)
    except ValueError:
        return response.text[:500]


class RemoteWorker:
    def __init__(self, server_url: str, *, token: str | None = None, options: WorkerOptions | None = None) -> None:
        self.options = options or WorkerOptions()
        self.name = self.options.resolved_name()
        self.api = WorkerApi(server_url, token)
        self.results = ServerResultReader(server_url, token)  # templates read `_ref`s through the server
        self.stop = asyncio.Event()
        self.wake = asyncio.Event()
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        self.lease_of: dict[str, str] = {}  # a batch member's command id: the row it holds the lease of
        # Members of a batch row beyond the free slots (a row is leased whole): started as slots free up.
        self.backlog: collections.deque[dict[str, Any]] = collections.deque()
        self.waiting_on_children = 0  # commands parked on a child execution free their slot
        self.completed = 0
        self._playbooks = ParsedPlaybooks()
        self.log_batcher = LogBatcher(self._send_logs)

    # lifecycle -------------------------------------------------------------------------
    async def run(self) -> None:
        warm_up()  # before the first lease: see noetl/runtime/warmup.py
        use_loader(self.results.read, self.results.read_items, self.results.read_piece)
        heartbeat = asyncio.create_task(self._heartbeat(), name="heartbeat")
        heartbeat.add_done_callback(self._side_task_ended)
        log.info("worker %s started against %s (concurrency %d)", self.name, self.api.client.base_url,
                 self.options.concurrency)
        try:
            await self._lease_loop()
            await self._drain()
        finally:
            self.stop.set()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            await self.log_batcher.close()
            await self.api.close()
            self.results.close()
            log.info("worker %s stopped after %d command(s)", self.name, self.completed)

    def _side_task_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.stop.is_set() and not self.in_flight:
            return
        exc = task.exception()
        log.error("worker %s: its %s task ended (%s); stopping", self.name, task.get_name(),
                  f"{type(exc).__name__}: {exc}" if exc else "returned")
        for running in self.in_flight.values():
            running.cancel()  # nobody extends their leases any more: they will be re-run elsewhere
        self.request_stop()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    def request_stop(self) -> None:
        self.stop.set()
        self.wake.set()

    async def _drain(self) -> None:
        tasks = list(self.in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=self.options.grace_seconds)
        leftovers = list(self.in_flight.values())
        for task in leftovers:
            task.cancel()  # their leases expire and the server's reaper re-queues them
        await asyncio.gather(*leftovers, return_exceptions=True)

    # leasing ---------------------------------------------------------------------------
    def _free_slots(self) -> int:
        return self.options.concurrency - (len(self.in_flight) - self.waiting_on_children) - len(self.backlog)

    async def _lease_loop(self) -> None:
        failures = 0
        while not self.stop.is_set():
            self.wake.clear()
            free = self._free_slots()
            leased: list[dict[str, Any]] = []
            if free > 0:
                try:
                    answer = await self.api.post("/api/workers/lease", {
                        "worker": self.name, "limit": free, "lease_seconds": self.options.lease_seconds})
                    leased = list(answer.get("commands") or [])
                    failures = 0
                except TokenRefused:
                    raise
                except NoetlError as exc:
                    failures += 1
                    log.warning("worker %s: lease: %s", self.name, exc)
                    await sleep_or_stop(self.stop, reconnect_delay(failures))
                    continue
            for item in leased[:max(free, 0)]:
                self._start(item)
            self.backlog.extend(leased[max(free, 0):])
            if leased and len(leased) >= free:
                continue  # probably more waiting: lease again before sleeping
            await event_set_within(self.wake, self.options.poll_interval)

    async def _send_logs(self, records: list[LogRecord]) -> None:
        """Streamed lines go to the server, which redacts them as it redacts reports and stores them."""
        lines = [{"execution_id": r.execution_id, "step": r.step, "loop_index": r.loop_index, "stream": r.stream,
                  "line": r.line, "created_at": r.created_at} for r in records]
        await self.api.post("/api/workers/logs", {"worker": self.name, "lines": lines})

    def _start(self, item: dict[str, Any]) -> None:
        command_id = str(item["command_id"])
        task = asyncio.create_task(self._execute(item))
        self.in_flight[command_id] = task
        if item.get("lease_id"):
            self.lease_of[command_id] = _lease_id(item)
        task.add_done_callback(lambda _: self._finished(command_id))

    def _finished(self, command_id: str) -> None:
        self.in_flight.pop(command_id, None)
        self.lease_of.pop(command_id, None)
        if self.backlog and not self.stop.is_set() and self._free_slots() + len(self.backlog) > 0:
            self._start(self.backlog.popleft())
        self.completed += 1
        self.wake.set()

    # running one command ----------------------------------------------------------------
    async def _execute(self, item: dict[str, Any]) -> None:
        command = self._command(item)
        with log_context(execution_id=command.execution_id, step=command.step, command_id=command.command_id):
            await self._execute_command(item, command)

    async def _execute_command(self, item: dict[str, Any], command: Any) -> None:
        services = RemoteServices(self, item)
        try:
            runner = Runner(await self._playbooks.parsed(item["playbook"], "<server>"), playbook_dir=None, services=services,
                            playbook_text=str(item["playbook"]))
            outcome = await run_command(runner, command)
        except Exception as exc:  # a bug in a tool fails the step, never the worker
            outcome = crash_outcome(exc)
        event = outcome_event(command, outcome, worker=self.name, attempt=int(item["attempt"]))
        await self._report(item, event, sorted(outcome.secrets | services.secrets))

    @staticmethod
    def _command(item: dict[str, Any]) -> Command:
        payload = item.get("payload") or {}
        return Command(
            command_id=str(item["command_id"]), execution_id=str(item["execution_id"]), step=str(item["step"]),
            tasks=payload.get("tasks") or [{"kind": "noop"}], context=decode_context(item.get("context") or []),
            local=payload.get("local") or {}, args=payload.get("args") or {},
            arc_input=payload.get("arc_input") or {}, loop_index=payload.get("loop_index"),
            entry=int(payload.get("entry") or 1), timeout=payload.get("timeout"), attempt=int(item["attempt"]),
            cursor=payload.get("cursor"),
            strict=bool(payload.get("strict")), warnings=payload.get("warnings") or [],
        )

    async def _report(self, item: dict[str, Any], event: Event, secrets: list[str]) -> None:
        """Report, retrying through a server outage while the lease could still be ours."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.options.lease_seconds * 4
        failures = 0
        while True:  # not tied to `stop`: a draining worker still reports what it finished
            body = {"worker": self.name, "command_id": item["command_id"], "attempt": item["attempt"],
                    "event": event.to_dict(), "secrets": secrets,
                    **({"lease_id": item["lease_id"]} if item.get("lease_id") else {})}
            try:
                await self.api.post("/api/workers/report", body)
                return
            except ToolError as exc:  # the server refused the report itself (e.g. a NaN in the result)
                if event.error and event.error.get("kind") == "unstorable_result":
                    log.error("worker %s: report of %s refused: %s", self.name, item["command_id"], exc)
                    return
                event = unstorable_outcome_event(event, exc)
            except (ServerUnavailable, ValueError) as exc:
                failures += 1
                delay = reconnect_delay(failures)
                if loop.time() + delay > give_up_at:
                    log.error("worker %s: giving up reporting %s: %s", self.name, item["command_id"], exc)
                    return
                log.warning("worker %s: report: %s (retrying)", self.name, exc)
                await asyncio.sleep(delay)

    # heartbeats ------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        """Extend the leases of running commands, until the last one is reported (also while draining)."""
        interval = max(self.options.lease_seconds / 3, 0.05)
        while not (self.stop.is_set() and not self.in_flight):
            await asyncio.sleep(interval)
            # A member of a batch row holds the row's lease (`lease_id`): one renewal for all of them.
            leases = {command_id: self.lease_of.get(command_id, command_id) for command_id in self.in_flight}
            ids = list(dict.fromkeys([*leases.values(), *map(_lease_id, self.backlog)]))
            if not ids:
                continue
            try:
                answer = await self.api.post("/api/workers/heartbeat", {
                    "worker": self.name, "command_ids": ids, "lease_seconds": self.options.lease_seconds})
            except ServerUnavailable as exc:
                log.warning("worker %s: heartbeat: %s", self.name, exc)
                continue
            held = set(answer.get("held") or [])
            self.backlog = collections.deque(item for item in self.backlog if _lease_id(item) in held)
            for command_id, lease_id in leases.items():
                task = self.in_flight.get(command_id)
                if lease_id not in held and task is not None:
                    task.cancel()  # cancelled execution or lease taken over: stop the work


def _lease_id(item: dict[str, Any]) -> str:
    """The queue row a shipped command holds the lease of (a batch row's, for a member of one)."""
    return str(item.get("lease_id") or item["command_id"])


class RemoteServices:
    """What tools get from the runtime on a remote worker: credentials and child playbooks, by API."""

    def __init__(self, worker: RemoteWorker, item: dict[str, Any]) -> None:
        self.worker = worker
        self.execution_id = str(item["execution_id"])
        self.command_id = str(item["command_id"])
        self.calls = 0
        self.secrets: set[str] = set()
        # What a result stored by reference is redacted with before it leaves the worker, as the
        # server redacts the reports: NoETL's own settings, the execution's secrets and every
        # credential value fetched.
        self.redactor = Redactor(sensitive_setting_values(), feeds=PROCESS_SECRETS)
        self.redactor.add(*(item.get("secrets") or []))  # the execution's, as the server knows them
        # Big results go by reference through the server, so reports (and the event log) stay small.
        self.results = ServerResultUploader(worker.api.client, execution_id=self.execution_id,
                                            command_id=self.command_id)
        self.log_batcher = worker.log_batcher

    async def get_credential(self, name: str) -> dict[str, Any]:
        from noetl.secrets import sensitive_values

        credential: dict[str, Any] = await self.worker.api.post(
            "/api/workers/credential", {"execution_id": self.execution_id, "name": name})
        self.secrets.update(sensitive_values(credential.get("data")))
        self.redactor.add(sensitive_values(credential.get("data")))
        return credential

    async def run_child_playbook(self, *, path: str, payload: dict[str, Any], version: int | None,
                                 return_step: str | None, call: ToolCall) -> Any:
        """Start the child through the server (once per call, even when this command is re-run) and
        wait for it without holding a worker slot."""
        self.calls += 1
        started = await self.worker.api.post("/api/workers/child", {
            "execution_id": self.execution_id, "command_id": self.command_id, "call_index": self.calls,
            "path": path, "version": version, "payload": dict(payload or {}),
            "secrets": sorted(call.secrets | self.secrets)})  # what the report will tell the server
        if started.get("error"):
            raise ErrorInfo.from_dict({**started["error"], "kind": started["error"].get("kind") or "playbook"}).to_exception()
        child_id = str(started["execution_id"])
        if return_step and return_step not in (started.get("steps") or []):
            raise ToolError(f"return_step {return_step!r} is not a step of {started.get('path')!r}", kind="config")
        doc = await self._wait_for(child_id)
        if doc["status"] != "completed":
            raise ToolError(f"child playbook {started.get('path')!r} (execution {child_id}) {doc['status']}: "
                            f"{doc.get('error')}", kind="playbook", details={"child_execution_id": child_id})
        if return_step:
            return (doc["steps"].get(return_step) or {}).get("result")
        return doc["result"]

    async def _wait_for(self, child_id: str) -> dict[str, Any]:
        self.worker.waiting_on_children += 1
        self.worker.wake.set()  # our slot is free while we wait
        try:
            polls = 0
            while True:
                with contextlib.suppress(ServerUnavailable):
                    doc: dict[str, Any] = await self.worker.api.get(f"/api/executions/{child_id}/status")
                    if doc.get("status") in TERMINAL:
                        return doc
                polls += 1
                await asyncio.sleep(backoff_delay(polls, delay=0.02, max_delay=0.5))
        finally:
            self.worker.waiting_on_children -= 1


async def run_remote_worker(server_url: str, token: str | None, options: WorkerOptions) -> None:
    require_confinement()
    worker = RemoteWorker(server_url, token=token, options=options)
    worker.install_signal_handlers()
    await worker.run()
