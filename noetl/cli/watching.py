"""`noetl executions`, `noetl logs` and following an execution as it runs (`status --watch`,
`exec -r distributed --wait`), against the local store or a server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlencode

import click

from noetl.cli.app import Context, cli, echo_rows, handle_errors, run_sync, with_store
from noetl.engine.events import EXECUTION_STATUSES, Event
from noetl.engine.logs import LogLine, log_lines, merged, streamed_lines
from noetl.errors import NotFoundError

POLL_SECONDS = 0.5
PAGE = 500
RECONNECT_SECONDS = 60.0  # how long a watcher waits for a server that went away (a restart)


class EventFeed(Protocol):
    async def after(self, event_id: int) -> list[Event]: ...

    async def status(self) -> str: ...


class LogFeed(EventFeed, Protocol):
    async def logs_after(self, log_id: int, step: str | None) -> list[LogLine]:
        """Lines streamed while their calls ran, after ``log_id``, at most a page."""
        ...


class LocalFeed:
    def __init__(self, store: Any, execution_id: str) -> None:
        self.store, self.execution_id = store, execution_id

    async def after(self, event_id: int) -> list[Event]:
        events: list[Event] = await self.store.list_events(self.execution_id, after_id=event_id, limit=PAGE)
        return events

    async def status(self) -> str:
        record = await self.store.get_execution(self.execution_id)
        if record is None:
            raise NotFoundError(f"execution {self.execution_id} not found")
        if record.status == "running" and record.owner:
            from noetl.runtime.owner import owner_is_dead, record_abandoned

            if owner_is_dead(record.owner):
                # Its `noetl run` died (kill -9): record it as `noetl status` would, and the watch
                # ends with the events that says so, instead of waiting for an end that never comes.
                await record_abandoned(self.store)
                return await self.status()
        return str(record.status)

    async def logs_after(self, log_id: int, step: str | None) -> list[LogLine]:
        records = await self.store.list_logs(self.execution_id, after_id=log_id, step=step, limit=PAGE)
        return streamed_lines(records)


class RemoteFeed:
    """An execution on a server. A server that goes away while it is followed (a restart, a rolling
    upgrade: the workers go on meanwhile) is waited for, up to ``reconnect_seconds`` in all, with
    one line when it goes and one when it is back; the watcher then goes on where it was."""

    def __init__(self, server_url: str, execution_id: str, reconnect_seconds: float = RECONNECT_SECONDS) -> None:
        self.server_url, self.execution_id = server_url, execution_id
        self.reconnect_seconds = reconnect_seconds
        self.lost_since: float | None = None

    async def _get(self, path: str) -> Any:
        from noetl.backoff import backoff_delay
        from noetl.cli.remote import ServerUnreachable, get_json

        attempt = 0
        while True:
            try:
                answer = await asyncio.to_thread(get_json, self.server_url, path)
            except ServerUnreachable as exc:
                now = time.monotonic()
                if self.lost_since is None:
                    self.lost_since = now
                    click.echo(f"warning: {exc}; trying again for {self.reconnect_seconds:g} s", err=True)
                if now - self.lost_since >= self.reconnect_seconds:
                    raise
                attempt += 1
                await asyncio.sleep(backoff_delay(attempt, delay=0.25, max_delay=2.0))
                continue
            if self.lost_since is not None:
                self.lost_since = None
                click.echo(f"reconnected to the NoETL server at {self.server_url}", err=True)
            return answer

    async def after(self, event_id: int) -> list[Event]:
        rows = await self._get(f"/api/executions/{self.execution_id}/events?after_id={event_id}&limit={PAGE}")
        return [Event.from_dict(row) for row in rows]

    async def status(self) -> str:
        # The light route: the execution's own (GET /api/executions/{id}) folds its whole log each time.
        row = await self._get(f"/api/executions/{self.execution_id}/state")
        return str(row["status"])

    async def logs_after(self, log_id: int, step: str | None) -> list[LogLine]:
        query = urlencode({"after_log_id": log_id, "events": "false", **({"step": step} if step else {})})
        rows = await self._get(f"/api/executions/{self.execution_id}/logs?{query}")
        return [LogLine.from_dict(row) for row in rows]


async def follow(feed: EventFeed, on_event: Callable[[Event], None], *, stop_when_done: bool = True) -> None:
    """Hand every event to ``on_event`` in order, from the first, until the execution has ended."""
    last = 0
    while True:
        events = await feed.after(last)
        for event in events:
            on_event(event)
            last = event.event_id
        if len(events) == PAGE:
            continue
        if stop_when_done and (await feed.status()) != "running":
            # Its last events may have been appended after the page above was read.
            for event in await feed.after(last):
                on_event(event)
            return
        await asyncio.sleep(POLL_SECONDS)


def watch(obj: Context, execution_id: str, on_event: Callable[[Event], None]) -> None:
    if obj.server_url:
        run_sync(follow(RemoteFeed(obj.server_url, execution_id), on_event))
        return

    async def local(store: Any) -> None:
        await follow(LocalFeed(store, execution_id), on_event)

    run_sync(with_store(local))


def watch_with_progress(obj: Context, execution_id: str, playbook_file: str | None = None) -> None:
    """Follow on stderr as `noetl run` shows a run (bars on a terminal, lines otherwise); a failed
    call's error is shown at ``playbook_file``'s line."""
    from noetl.cli.progress import PlaybookSource, make_progress

    progress = make_progress(True, PlaybookSource(playbook_file, "") if playbook_file else None)
    assert progress is not None
    try:
        watch(obj, execution_id, progress)
    finally:
        progress.close()


@cli.command("executions")
@click.option("--status", type=click.Choice(EXECUTION_STATUSES), default=None,
              help="Only executions with this status.")
@click.option("--path", default=None, help="Only executions whose playbook path contains this text.")
@click.option("--since", default=None, help="Started since: an ISO date/time (UTC) or an age like 30m, 2h, 7d.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.pass_obj
@handle_errors
def executions(obj: Context, status: str | None, path: str | None, since: str | None, limit: int,
               as_json: bool) -> None:
    """List executions, newest first (the local store, or the server with --server-url)."""
    from noetl.server.console.source import ExecutionFilter, parse_since  # not the routes: no FastAPI here

    flt = ExecutionFilter(status, path, parse_since(since, field="--since") if since else None, limit)
    rows = _remote_executions(obj.server_url, flt) if obj.server_url else _local_executions(flt)
    if as_json:
        echo_rows(rows, True, str)
        return
    _table(rows)


def _local_executions(flt: Any) -> list[dict[str, Any]]:
    from noetl.runtime.owner import record_abandoned
    from noetl.server.console.source import list_executions

    async def load(store: Any) -> list[dict[str, Any]]:
        await record_abandoned(store)  # a run whose process died is listed failed, as `status` shows it
        records, _ = await list_executions(store, flt)
        return [_row(r.execution_id, r.path, r.status, r.started_at, r.ended_at, r.parent_execution_id)
                for r in records]

    return run_sync(with_store(load))


def _remote_executions(server_url: str, flt: Any) -> list[dict[str, Any]]:
    from urllib.parse import urlencode

    from noetl.cli.remote import get_json

    filters = {"status": flt.status, "path": flt.path, "since": flt.since_iso}
    query = {"limit": flt.limit, **{name: value for name, value in filters.items() if value}}
    rows = get_json(server_url, f"/api/executions?{urlencode(query)}")
    return [_row(str(r["execution_id"]), r.get("path") or "", r["status"], r.get("started_at") or "",
                 r.get("ended_at"), r.get("parent_execution_id")) for r in rows]


def _row(execution_id: str, path: str, status: str, started: str, ended: str | None,
         parent: str | None) -> dict[str, Any]:
    duration = _seconds_between(started, ended)
    return {"execution_id": execution_id, "path": path, "status": status, "started_at": started,
            "ended_at": ended, "duration_seconds": None if duration is None else round(duration, 3),
            "parent_execution_id": parent}


def _seconds_between(start: str, end: str | None) -> float | None:
    from datetime import datetime

    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() if end else None
    except ValueError:
        return None


def _table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no executions", err=True)
        return
    header = ("EXECUTION", "STATUS", "STARTED", "DURATION", "PATH")
    cells = [(r["execution_id"], r["status"], str(r["started_at"])[:19].replace("T", " "),
              "" if r["duration_seconds"] is None else f"{r['duration_seconds']:.3f} s", r["path"]) for r in rows]
    widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(len(header) - 1)]
    for line in (header, *cells):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1])


@cli.command("logs")
@click.argument("execution_id")
@click.option("--step", default=None, help="Only this step's logs.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the execution ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
@handle_errors
def logs(obj: Context, execution_id: str, step: str | None, follow: bool, as_json: bool) -> None:
    """Print an execution's logs (what each call printed, also while it runs), with step and loop index."""

    def show(line: LogLine) -> None:
        click.echo(json.dumps(line.to_dict()) if as_json else line.render())

    if obj.server_url and not follow:
        from noetl.cli.remote import get_json

        query = "?" + urlencode({"step": step}) if step else ""
        for row in get_json(obj.server_url, f"/api/executions/{execution_id}/logs{query}"):
            show(LogLine.from_dict(row))
        return

    async def read(feed: LogFeed) -> None:
        await feed.status()  # not found: one clear line
        await follow_logs(feed, show, step, until_done=follow)

    if obj.server_url:
        run_sync(read(RemoteFeed(obj.server_url, execution_id)))
        return

    async def local(store: Any) -> None:
        if step is not None:
            from noetl.runtime.execution_steps import check_execution_step

            await check_execution_step(store, execution_id, step, "--step")
        await read(LocalFeed(store, execution_id))

    run_sync(with_store(local))


async def follow_logs(feed: LogFeed, show: Callable[[LogLine], None], step: str | None, *,
                      until_done: bool) -> None:
    """Print the lines events carry and the lines streamed while calls ran, merged in time order;
    with ``until_done``, keep polling until the execution has ended."""
    last_event = last_log = 0
    while True:
        events = await feed.after(last_event)
        streamed = await feed.logs_after(last_log, step)
        for line in merged(log_lines(events, step), streamed):
            show(line)
        last_event = events[-1].event_id if events else last_event
        last_log = streamed[-1].log_id or last_log if streamed else last_log
        if len(events) == PAGE or len(streamed) == PAGE:
            continue
        if not until_done:
            return
        if (await feed.status()) != "running":
            until_done = False  # one more read: its last lines may have come after the ones above
            continue
        await asyncio.sleep(POLL_SECONDS)
