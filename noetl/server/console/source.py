"""Where the console reads from and acts on: the server's PostgreSQL store, or the local store.

Both sources answer the same questions with the store's own read models (executions, events,
catalog, credentials) so the pages are one code path for ``noetl server start`` and ``noetl ui``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from noetl.engine.events import Event
from noetl.engine.status import status_document
from noetl.errors import InputError, NotFoundError
from noetl.store.base import CatalogEntry, CredentialRecord, ExecutionRecord, Store


@dataclass(slots=True)
class ExecutionFilter:
    status: str | None = None
    path: str | None = None  # substring of the playbook path
    since: datetime | None = None  # started at or after (naive: local time)
    limit: int = 50
    offset: int = 0

    @property
    def since_iso(self) -> str | None:
        return self.since.astimezone(UTC).isoformat() if self.since else None


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None, field: str = "since") -> datetime:
    """``2h``/``30m``/``7d`` ago, or an ISO date or time (UTC when no zone is given).

    ``field`` names the input in the error: the query parameter, or the CLI's ``--since``."""
    text = text.strip()
    now = now or datetime.now(UTC)
    if match := _RELATIVE.match(text):
        moment = now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InputError(f"{field} {text!r}: expected an ISO date/time (2026-01-31T08:00) or an age "
                             f"like 30m, 2h, 7d") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().replace(tzinfo=None)


class ConsoleSource(Protocol):
    @property
    def store(self) -> Store: ...

    async def start(self, entry: CatalogEntry, payload: dict[str, Any]) -> str:
        """Start an execution of ``entry``; return its id."""
        ...

    async def cancel(self, execution_id: str) -> dict[str, Any]: ...

    async def trigger_schedule(self, name: str) -> str:
        """Start an execution of schedule ``name`` now ("run now"); return its id."""
        ...

    async def settle(self) -> None:
        """Record what the store cannot know by itself before a page reads it (a local execution
        whose process died is failed, as ``noetl status`` and ``noetl executions`` show it)."""
        ...


async def list_executions(store: Store, flt: ExecutionFilter) -> tuple[list[ExecutionRecord], bool]:
    """One page of executions (newest first) and whether there is a next page."""
    records = await store.list_executions(status=flt.status or None, path=flt.path or None,
                                          started_since=flt.since_iso, limit=flt.limit + 1, offset=flt.offset)
    return records[:flt.limit], len(records) > flt.limit


async def execution_or_404(store: Store, execution_id: str) -> ExecutionRecord:
    record = await store.get_execution(execution_id)
    if record is None:
        raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
    return record


async def events(store: Store, execution_id: str, after_id: int = 0, limit: int | None = None) -> list[Event]:
    return await store.list_events(execution_id, after_id=after_id, limit=limit)


EVENT_PAGE = 2000  # events read per query when a page folds a whole log


async def head_pages(store: Store, execution_id: str, after_id: int = 0) -> AsyncIterator[list[Event]]:
    """The heads of the events after ``after_id`` (``Store.list_event_heads``: what the page's fold
    reads, without a loop call's result), a page at a time: a 10,000-item loop's log is never all in
    memory, and on PostgreSQL its calls are not decoded from JSON."""
    while True:
        page = await store.list_event_heads(execution_id, after_id=after_id, limit=EVENT_PAGE)
        if page:
            yield page
        if len(page) < EVENT_PAGE:
            return
        after_id = page[-1].event_id


def status_of(event_log: list[Event]) -> dict[str, Any]:
    return status_document(event_log)


async def catalog_versions(store: Store, path: str) -> list[int]:
    """The version numbers of ``path``, latest first. Versions count up from 1 without gaps (the
    store's contract) and are never deleted, so the latest one says them all: the page read every
    version's text (300 versions of a 60 KB playbook: 300 queries and 18 MB) to show numbers."""
    latest = await store.get_catalog(path)
    if latest is None:
        raise NotFoundError(f"no catalog entry for path {path!r}")
    return list(range(latest.version, 0, -1))


async def catalog_entry(store: Store, path: str, version: int | None) -> CatalogEntry:
    entry = await store.get_catalog(path, version)
    if entry is None:
        at = f" version {version}" if version else ""
        raise NotFoundError(f"no catalog entry for path {path!r}{at}")
    return entry


async def credentials(store: Store) -> list[CredentialRecord]:
    return await store.list_credentials()


SETTLE_SECONDS = 2.0  # how soon the console shows a killed local run as failed (abandoned)


@dataclass
class ServerSource:
    """The distributed runtime: executions are submitted to the decision core and run on workers."""

    state: Any  # noetl.server.state.ServerState (typed loosely: this module must not import the server)

    @property
    def store(self) -> Store:
        store: Store = self.state.store
        return store

    async def start(self, entry: CatalogEntry, payload: dict[str, Any]) -> str:
        execution_id: str = await self.state.core.submit(
            playbook_text=entry.content, source=f"catalog://{entry.path}@{entry.version}", payload=payload)
        return execution_id

    async def cancel(self, execution_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.state.core.cancel(execution_id)
        return result

    async def trigger_schedule(self, name: str) -> str:
        from noetl.scheduling.distributed import DistributedStarter

        return await _run_now(self.store, DistributedStarter(self.state.core), name)

    async def settle(self) -> None:
        return None  # the server's own sweeps record lost workers and leases


@dataclass
class LocalSource:
    """``noetl ui``: the local store; started executions run in this process, like ``noetl run``."""

    store: Store
    running: set[asyncio.Task[Any]] = field(default_factory=set)
    settled_at: float = -SETTLE_SECONDS
    scheduled: Any = None  # the LocalStarter of "run now" executions, made on first use

    async def start(self, entry: CatalogEntry, payload: dict[str, Any]) -> str:
        from noetl.dsl.parse import load_playbook_text
        from noetl.ids import new_execution_id
        from noetl.runtime.request import RunRequest

        loaded = load_playbook_text(entry.content, f"catalog://{entry.path}@{entry.version}")
        playbook = loaded.require()
        request = RunRequest(playbook=playbook, playbook_text=entry.content, payload=payload,
                             execution_id=new_execution_id())
        return await self._run(request)

    async def rerun(self, execution_id: str) -> dict[str, Any]:
        """A new execution of the same playbook text and payload, run in this process (`noetl rerun`)."""
        from noetl.ids import new_execution_id
        from noetl.runtime.recovery import rerun_request

        request = await rerun_request(self.store, execution_id)
        request.execution_id = new_execution_id()
        return {"execution_id": await self._run(request), "status": "started", "rerun_of": execution_id}

    async def resume(self, execution_id: str) -> dict[str, Any]:
        """Continue a failed, cancelled or abandoned execution in place, in this process (`noetl resume`)."""
        from noetl.runtime.recovery import resume_request

        return {"execution_id": await self._run(await resume_request(self.store, execution_id), resumed=True),
                "status": "resumed"}

    async def _run(self, request: Any, *, resumed: bool = False) -> str:
        from noetl.runtime.local import LocalRuntime

        assert request.execution_id is not None
        task = asyncio.create_task(LocalRuntime(self.store).run(request))
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        await _until_recorded(self.store, request.execution_id, task, running=resumed)
        return str(request.execution_id)

    async def trigger_schedule(self, name: str) -> str:
        from noetl.scheduling.local import LocalStarter

        if self.scheduled is None:
            self.scheduled = LocalStarter(self.store)
        return await _run_now(self.store, self.scheduled, name)

    async def cancel(self, execution_id: str) -> dict[str, Any]:
        from noetl.runtime.cancel import cancel_local

        return await cancel_local(self.store, execution_id)

    async def settle(self) -> None:
        # Every page and every live poll asks; the processes are looked at once per interval.
        from noetl.runtime.owner import record_abandoned

        now = time.monotonic()
        if now - self.settled_at >= SETTLE_SECONDS:
            self.settled_at = now
            await record_abandoned(self.store)

    async def close(self) -> None:
        tasks = [*self.running, *(self.scheduled.tasks if self.scheduled else ())]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _run_now(store: Store, starter: Any, name: str) -> str:
    from noetl.clock import utc_now
    from noetl.scheduling.scheduler import Scheduler
    from noetl.scheduling.service import require_schedule

    fired = await Scheduler(store, starter).run_now(await require_schedule(store, name), utc_now())
    return str(fired.execution_id)


async def _until_recorded(store: Store, execution_id: str, task: asyncio.Task[Any], *, running: bool = False) -> None:
    """Answer once the execution row exists (with ``running``: once it runs again, for a resumed
    one), so the page the browser opens next has something to show."""
    for _ in range(200):
        record = await store.get_execution(execution_id)
        if record is not None and (not running or record.status == "running"):
            return
        if task.done():
            exc = task.exception()
            if exc is not None:
                raise InputError(f"the execution did not start: {str(exc).splitlines()[0]}") from exc
            return
        await asyncio.sleep(0.02)
