"""`noetl status`, `noetl events` and `noetl cancel`: inspect and control an execution."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from noetl.cli.app import (
    EXIT_FAILED,
    Context,
    cli,
    echo_rows,
    handle_errors,
    print_json,
    run_sync,
    with_store,
)
from noetl.errors import NotFoundError


@cli.command()
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
@click.option("--watch", is_flag=True, help="Follow the execution until it ends (exit 0 completed, 1 otherwise).")
@click.pass_obj
@handle_errors
def status(obj: Context, execution_id: str, as_json: bool, watch: bool) -> None:
    """Show an execution's status document."""
    if watch:
        from noetl.cli.watching import watch_with_progress

        started = status_doc(obj, execution_id)  # an unknown id is one clear line before anything is drawn
        watch_with_progress(obj, execution_id, playbook_file(obj, execution_id, started))
    doc = status_doc(obj, execution_id)
    if as_json:
        click.echo(json.dumps(doc, default=str))
        return
    click.echo(f"execution {doc['execution_id']} ({doc['path']}): {doc['status']}")
    file: str | None = None
    for name, step in doc["steps"].items():
        click.echo(f"  {name}: {step['status']}")
        error = step.get("error") if isinstance(step.get("error"), dict) else None
        if error and isinstance(error.get("playbook_line"), int):
            file = file or playbook_file(obj, execution_id, doc)
            click.echo(f"    at {file}:{error['playbook_line']}: {error.get('message') or 'failed'}")
    if doc.get("error"):
        click.echo(f"error: {doc['error']}")
    if watch and doc["status"] != "completed":
        sys.exit(EXIT_FAILED)


def playbook_file(obj: Context, execution_id: str, doc: dict[str, Any]) -> str:
    """What a failed step's playbook line is shown in: the file `noetl run` ran (its first event
    says), else the playbook's path (a catalog entry, or an execution on a server)."""
    if obj.server_url:
        return str(doc.get("path") or "playbook")

    async def load(store: Any) -> str:
        first = await store.list_events(execution_id, limit=1)
        source = first[0].meta.get("source_file") if first else None
        return str(source or doc.get("path") or "playbook")

    return run_sync(with_store(load))


def status_doc(obj: Context, execution_id: str) -> dict[str, Any]:
    if obj.server_url:
        from noetl.cli.remote import get_json

        return get_json(obj.server_url, f"/api/executions/{execution_id}/status")

    async def load(store: Any) -> dict[str, Any]:
        from noetl.engine.status import status_document
        from noetl.runtime.owner import record_abandoned

        await record_abandoned(store)
        if await store.get_execution(execution_id) is None:
            raise NotFoundError(f"execution {execution_id} not found")
        return status_document(await store.list_events(execution_id))

    return run_sync(with_store(load))


@cli.command()
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def events(obj: Context, execution_id: str, as_json: bool) -> None:
    """List an execution's events."""
    if obj.server_url:
        from noetl.cli.remote import get_json

        rows = get_json(obj.server_url, f"/api/executions/{execution_id}/events")
    else:
        async def load(store: Any) -> list[dict[str, Any]]:
            if await store.get_execution(execution_id) is None:
                raise NotFoundError(f"execution {execution_id} not found")
            return [e.to_dict() for e in await store.list_events(execution_id)]

        rows = run_sync(with_store(load))
    echo_rows(rows, as_json, lambda row: (f"{row['event_id']:>5}", str(row["created_at"]), row["event_type"],
                                         row.get("node_name") or "", row.get("status") or ""))


@cli.command()
@click.argument("execution_id")
@click.pass_obj
@handle_errors
def cancel(obj: Context, execution_id: str) -> None:
    """Cancel a running execution (and its children)."""
    if obj.server_url:
        from noetl.cli.remote import post_json

        print_json(post_json(obj.server_url, f"/api/executions/{execution_id}/cancel", {}))
        return
    from noetl.runtime.cancel import cancel_local

    print_json(run_sync(with_store(lambda store: cancel_local(store, execution_id))))
