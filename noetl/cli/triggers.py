"""`noetl trigger ...`: "when an execution of PATH completes / fails, start RUN"."""

from __future__ import annotations

from typing import Any

import click

from noetl.cli.app import (
    Context,
    cli,
    echo_changed,
    echo_rows,
    handle_errors,
    on_server_or_store,
    run_sync,
    with_store,
)


@cli.group()
def trigger() -> None:
    """Completion triggers: start a playbook when an execution of another one ends."""


@trigger.command("add")
@click.option("--on-path", "on_path", required=True, help="Playbook path whose executions are watched.")
@click.option("--on", "on", required=True, help="completed | failed: the ending that fires the trigger.")
@click.option("--run", "run", required=True, help="Catalog path of the playbook to start.")
@click.option("--name", help="Trigger name (default: ON_PATH:ON:RUN).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_obj
@handle_errors
def add(obj: Context, on_path: str, on: str, run: str, name: str | None, as_json: bool) -> None:
    """Start --run when an execution of --on-path ends --on; its payload is
    {trigger: {execution_id, path, status, result}}."""
    from noetl.triggers import checked_trigger, trigger_view

    record = checked_trigger(on_path=on_path, on=on, run=run, name=name)
    if obj.server_url:
        from noetl.cli.remote import post_json

        body = {"on_path": on_path, "on": on, "run": run, "name": name}
        echo_changed(post_json(obj.server_url, "/api/triggers", body), as_json, _trigger_cells, "trigger")
        return

    async def store_it(store: Any) -> dict[str, Any]:
        from noetl.errors import NotFoundError

        if await store.get_catalog(record.run_path) is None:
            raise NotFoundError(f"--run: no catalog entry {record.run_path!r} (register it first)")
        return trigger_view(await store.put_trigger(record))

    echo_changed(run_sync(with_store(store_it)), as_json, _trigger_cells, "trigger")


@trigger.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.pass_obj
@handle_errors
def list_(obj: Context, as_json: bool) -> None:
    """List completion triggers."""
    from noetl.cli.remote import get_json
    from noetl.triggers import trigger_view

    async def load(store: Any) -> list[dict[str, Any]]:
        return [trigger_view(t) for t in await store.list_triggers()]

    rows = on_server_or_store(obj, server=lambda url: get_json(url, "/api/triggers"), store=load)
    echo_rows(rows, as_json, _trigger_cells, empty="no triggers")


@trigger.command("delete")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_obj
@handle_errors
def delete_(obj: Context, name: str, as_json: bool) -> None:
    """Delete a completion trigger."""
    from noetl.cli.remote import delete_json
    from noetl.triggers import delete as delete_trigger

    async def delete(store: Any) -> dict[str, Any]:
        await delete_trigger(store, name)
        return {"name": name, "deleted": True}

    answer = on_server_or_store(obj, server=lambda url: delete_json(url, f"/api/triggers/{name}"), store=delete)
    echo_changed(answer, as_json, _trigger_cells, "trigger")


def _trigger_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (row["name"], f"on {row['on_path']} {row['on']}", f"run {row['run']}")
