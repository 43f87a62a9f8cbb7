"""`noetl schedule ...` (cron schedules in the catalog) and `noetl scheduler` (run them locally)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

import click

from noetl.cli.app import (
    EXIT_FAILED,
    Context,
    cli,
    echo_changed,
    echo_rows,
    handle_errors,
    on_server_or_store,
    print_json,
    run_sync,
    with_store,
)


@cli.group()
def schedule() -> None:
    """Cron schedules of playbooks (stored in the catalog)."""


@schedule.command("add")
@click.argument("path")
@click.option("--cron", "cron_expr", required=True, help="Five-field cron expression, e.g. '0 6 * * 1-5'.")
@click.option("--tz", "timezone", default="UTC", show_default=True, help="IANA time zone of the expression.")
@click.option("--payload", help="JSON object, or @file.json, given to every execution.")
@click.option("--overlap", default="skip", show_default=True,
              help="skip | queue | allow, when the previous execution still runs.")
@click.option("--catchup", default="latest", show_default=True,
              help="none | latest | all, for fire times missed while no scheduler ran.")
@click.option("--name", help="Schedule name (default: the playbook's catalog path).")
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
@click.pass_obj
@handle_errors
def add(obj: Context, path: str, cron_expr: str, timezone: str, payload: str | None, overlap: str, catchup: str,
        name: str | None, as_json: bool) -> None:
    """Run PATH (catalog path or playbook file) on a cron schedule."""
    from noetl.api import parse_payload

    body: dict[str, Any] = {"path": path, "cron": cron_expr, "timezone": timezone, "payload": parse_payload(payload),
            "overlap": overlap, "catchup": catchup, "name": name}

    def on_server(server_url: str) -> dict[str, Any]:
        from noetl.cli.remote import post_json

        return dict(post_json(server_url, "/api/schedules", body))

    async def store_it(store: Any) -> dict[str, Any]:
        import os

        from noetl.api import resolve_playbook
        from noetl.scheduling.service import checked_schedule, schedule_view

        loaded = await resolve_playbook(path, store)
        playbook = loaded.require()
        # A file is kept by its absolute path (the scheduler may run elsewhere); a directory named like
        # a catalog path is the catalog path, as resolve_playbook has just taken it.
        target = os.path.abspath(path) if os.path.isfile(path) else path
        record = checked_schedule(name=name or playbook.path, path=target, cron=cron_expr, timezone=timezone,
                                  payload=body["payload"], overlap=overlap, catchup=catchup)
        return schedule_view(await store.put_schedule(record))

    _echo_schedule(on_server_or_store(obj, server=on_server, store=store_it), as_json)


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.pass_obj
@handle_errors
def list_(obj: Context, as_json: bool) -> None:
    """List schedules with their next fire time."""

    def on_server(server_url: str) -> list[dict[str, Any]]:
        from noetl.cli.remote import get_json

        return list(get_json(server_url, "/api/schedules"))

    async def load(store: Any) -> list[dict[str, Any]]:
        from noetl.scheduling.service import schedule_view

        return [schedule_view(s) for s in await store.list_schedules()]

    rows = on_server_or_store(obj, server=on_server, store=load)
    echo_rows(rows, as_json, _schedule_cells, empty="no schedules")


def _schedule_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (row["name"], row["cron"], row["timezone"], "enabled" if row["enabled"] else "paused",
            f"next {row['next_fire'] or '-'}")


def _echo_schedule(view: dict[str, Any], as_json: bool) -> None:
    echo_changed(view, as_json, _schedule_cells, "schedule")


def _change(obj: Context, name: str, action: str, as_json: bool) -> None:
    def on_server(server_url: str) -> dict[str, Any]:
        from noetl.cli.remote import delete_json, post_json

        if action == "delete":
            return dict(delete_json(server_url, f"/api/schedules/{name}"))
        return dict(post_json(server_url, f"/api/schedules/{name}/{action}", {}))

    async def change(store: Any) -> dict[str, Any]:
        from noetl.scheduling import service

        if action == "delete":
            await service.delete(store, name)
            return {"name": name, "deleted": True}
        return service.schedule_view(await service.set_enabled(store, name, action == "resume"))

    _echo_schedule(on_server_or_store(obj, server=on_server, store=change), as_json)


@schedule.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_obj
@handle_errors
def pause(obj: Context, name: str, as_json: bool) -> None:
    """Stop starting executions of a schedule (its fire times pass unrun)."""
    _change(obj, name, "pause", as_json)


@schedule.command("resume")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_obj
@handle_errors
def resume_(obj: Context, name: str, as_json: bool) -> None:
    """Start a paused schedule again."""
    _change(obj, name, "resume", as_json)


@schedule.command("delete")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_obj
@handle_errors
def delete_(obj: Context, name: str, as_json: bool) -> None:
    """Delete a schedule and its fire records."""
    _change(obj, name, "delete", as_json)


@schedule.command()
@click.argument("name")
@click.option("--from", "start", required=True, metavar="T", help="ISO 8601 time (UTC when no offset).")
@click.option("--to", "end", required=True, metavar="T", help="ISO 8601 time (UTC when no offset), inclusive.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array (or the server's answer).")
@click.pass_obj
@handle_errors
def backfill(obj: Context, name: str, start: str, end: str, as_json: bool) -> None:
    """Run every fire time of NAME in [--from, --to] that has not run yet, and wait for them."""
    from noetl.scheduling.service import backfill_range

    first, last = backfill_range(start, end)
    if obj.server_url:  # the server starts the executions on its workers and answers at once
        from noetl.cli.remote import post_json

        answer = post_json(obj.server_url, f"/api/schedules/{name}/backfill", {"from": start, "to": end})
        echo_rows(answer, as_json, _backfill_row)  # the same rows as on the local store, status `started`
        return

    async def run(store: Any) -> list[dict[str, Any]]:
        from noetl.scheduling.local import LocalStarter
        from noetl.scheduling.scheduler import Scheduler
        from noetl.scheduling.service import require_schedule

        schedule_record = await require_schedule(store, name)
        starter = LocalStarter(store)
        fired = await Scheduler(store, starter).backfill(schedule_record, first, last)
        await starter.wait()
        return [{"scheduled_for": f.scheduled_for, "execution_id": f.execution_id,
                 "status": starter.documents.get(f.execution_id or "", {}).get("status", f.status)} for f in fired]

    rows = run_sync(with_store(run))
    echo_rows(rows, as_json, _backfill_row)
    ran = [r for r in rows if r["execution_id"] or r["status"] == "not-started"]
    sys.exit(0 if all(r["status"] == "completed" for r in ran) else EXIT_FAILED)


def _backfill_row(row: dict[str, Any]) -> tuple[str, str, str]:
    return str(row["scheduled_for"]), str(row["execution_id"] or "-"), str(row["status"])


@schedule.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.pass_obj
@handle_errors
def trigger(obj: Context, name: str, as_json: bool) -> None:
    """Run NAME's playbook now, paused or not (on the local store: wait for it, exit like `noetl run`)."""
    if obj.server_url:  # the server starts the execution on its workers and answers at once
        from noetl.cli.remote import post_json

        _echo_run(post_json(obj.server_url, f"/api/schedules/{name}/trigger", {}), as_json)
        return

    async def run(store: Any) -> dict[str, Any]:
        from noetl.clock import utc_now
        from noetl.scheduling.local import LocalStarter
        from noetl.scheduling.scheduler import Scheduler
        from noetl.scheduling.service import fired_view, require_schedule

        starter = LocalStarter(store)
        fired = await Scheduler(store, starter).run_now(await require_schedule(store, name), utc_now())
        await starter.wait()
        document = starter.documents.get(fired.execution_id or "", {})
        row = {**fired_view(fired), "status": document.get("status", "not-started")}
        return {**row, "error": document["error"]} if document.get("error") else row

    row = run_sync(with_store(run))
    _echo_run(row, as_json)
    sys.exit(0 if row["status"] == "completed" else EXIT_FAILED)


def _echo_run(row: dict[str, Any], as_json: bool) -> None:
    """A "run now": its JSON with ``--json``, else one line (and the error of a failed run on stderr)."""
    if as_json:
        print_json(row)
        return
    click.echo(f"execution {row['execution_id'] or '-'} {row['status']} (schedule {row['schedule']})")
    if row.get("error"):
        click.echo(f"error: {row['error']}", err=True)


@cli.command()
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, help="Seconds between ticks.")
@click.option("--once", is_flag=True, help="One tick, wait for what it started, then exit.")
@handle_errors
def scheduler(interval: float, once: bool) -> None:
    """Run the schedules of the local store (executions run in this process)."""

    async def serve(store: Any) -> None:
        from noetl.clock import utc_now
        from noetl.scheduling.local import LocalStarter
        from noetl.scheduling.scheduler import Scheduler

        starter = LocalStarter(store)
        service = Scheduler(store, starter)
        while True:
            for fired in await service.tick(utc_now()):
                click.echo(json.dumps({"schedule": fired.schedule, "scheduled_for": fired.scheduled_for,
                                       "status": fired.status, "execution_id": fired.execution_id}))
            if once:
                await starter.wait()
                return
            await asyncio.sleep(interval)

    with contextlib.suppress(KeyboardInterrupt):
        run_sync(with_store(serve))
