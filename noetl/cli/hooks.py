"""`noetl hook ...`: webhooks of catalog entries (the server receives them at /api/hooks/NAME)."""

from __future__ import annotations

import json
from pathlib import Path
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
from noetl.errors import InputError


@cli.group()
def hook() -> None:
    """Webhooks that start a catalog playbook (POST /api/hooks/NAME on the server)."""


def _template(text: str | None) -> Any:
    if text is None:
        return None
    source = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
    try:
        return json.loads(source)
    except ValueError as exc:
        raise InputError(f"--payload-template: not JSON ({exc})") from None


@hook.command("add")
@click.argument("name")
@click.option("--path", "path", required=True, help="Catalog path of the playbook a delivery starts.")
@click.option("--secret", help="HMAC-SHA256 key: deliveries are signed (X-NoETL-Signature).")
@click.option("--token", help="Deliveries carry this token (Authorization: Bearer or X-NoETL-Token).")
@click.option("--payload-template", "payload_template",
              help="JSON (or @file.json) rendered over {body, headers} into the payload (default: the body).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_obj
@handle_errors
def add(obj: Context, name: str, path: str, secret: str | None, token: str | None,
        payload_template: str | None, as_json: bool) -> None:
    """Create or replace the webhook NAME of the catalog entry --path."""
    from noetl.hooks import checked_hook, hook_view

    template = _template(payload_template)
    record = checked_hook(name=name, path=path, secret=secret, token=token, payload_template=template)
    if obj.server_url:
        from noetl.cli.remote import post_json

        body = {"name": name, "path": path, "secret": secret, "token": token, "payload_template": template}
        echo_changed(post_json(obj.server_url, "/api/hooks", body), as_json, _hook_cells, "hook")
        return

    async def store_it(store: Any) -> dict[str, Any]:
        from noetl.errors import NotFoundError

        if await store.get_catalog(record.path) is None:
            raise NotFoundError(f"--path: no catalog entry {record.path!r} (register it first)")
        return hook_view(await store.put_hook(record))

    echo_changed(run_sync(with_store(store_it)), as_json, _hook_cells, "hook")


@hook.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.pass_obj
@handle_errors
def list_(obj: Context, as_json: bool) -> None:
    """List webhooks (how each authenticates; never its secret)."""
    from noetl.cli.remote import get_json
    from noetl.hooks import hook_view

    async def load(store: Any) -> list[dict[str, Any]]:
        return [hook_view(h) for h in await store.list_hooks()]

    rows = on_server_or_store(obj, server=lambda url: get_json(url, "/api/hooks"), store=load)
    echo_rows(rows, as_json, _hook_cells, empty="no hooks")


@hook.command("delete")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_obj
@handle_errors
def delete_(obj: Context, name: str, as_json: bool) -> None:
    """Delete a webhook and its delivery records."""
    from noetl.cli.remote import delete_json
    from noetl.hooks import require_hook

    async def delete(store: Any) -> dict[str, Any]:
        await require_hook(store, name)
        await store.delete_hook(name)
        return {"name": name, "deleted": True}

    answer = on_server_or_store(obj, server=lambda url: delete_json(url, f"/api/hooks/{name}"), store=delete)
    echo_changed(answer, as_json, _hook_cells, "hook")


def _hook_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (row["name"], row["path"], row["auth"])
