"""Catalog, credential and seed-compatible command spellings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from noetl.cli.app import cli, echo_changed, echo_rows, handle_errors, run_sync, with_store
from noetl.cli.options import server_options
from noetl.cli.running import run_local
from noetl.errors import InputError


def _playbook_files(target: str) -> list[Path]:
    path = Path(target)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
    if not path.exists():
        raise InputError(f"{target}: file not found")
    return [path]


def _register(obj: Any, target: str, *, credentials_only: bool = False) -> list[dict[str, Any]]:
    from noetl.cli.registration import prepare_all, register_local, register_remote

    # all checked before any is stored
    prepared = prepare_all(_playbook_files(target), credentials_only=credentials_only)
    if obj.server_url:
        return [register_remote(obj.server_url, item) for item in prepared]

    async def work(store: Any) -> list[dict[str, Any]]:
        return [await register_local(store, item) for item in prepared]

    return run_sync(with_store(work))


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def install(cli: click.Group) -> None:
    @cli.group()
    def catalog() -> None:
        """Playbooks (and credentials) by path, with versions."""

    @catalog.command("register")
    @click.argument("target")
    @server_options
    @click.pass_obj
    @handle_errors
    def catalog_register(obj: Any, target: str) -> None:
        """Register a playbook or credential FILE, or every YAML file under DIR."""
        _echo(_register(obj, target))

    @catalog.command("list")
    @click.argument("kind", required=False)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @server_options
    @click.pass_obj
    @handle_errors
    def catalog_list(obj: Any, kind: str | None, as_json: bool) -> None:
        """List the latest version of every catalog path (KIND: Playbook, or Credential for credentials)."""
        if kind and kind.lower() in ("credential", "credentials"):
            credential_list.callback(as_json)  # type: ignore[misc]
            return
        if obj.server_url:
            from noetl.cli.remote import post_json

            rows = post_json(obj.server_url, "/api/catalog/list", {"kind": kind} if kind else {})
            rows = rows.get("entries", rows) if isinstance(rows, dict) else rows
        else:
            async def work(store: Any) -> list[dict[str, Any]]:
                entries = await store.list_catalog(kind=kind)
                return [{"path": e.path, "version": e.version, "kind": e.kind, "name": e.name,
                         "catalog_id": e.catalog_id, "created_at": e.created_at} for e in entries]

            rows = run_sync(with_store(work))
        echo_rows(rows, as_json, lambda row: (row["path"], f"v{row['version']}", row["kind"]),
                  empty="no catalog entries")

    @catalog.command("get")
    @click.argument("path")
    @click.option("--version", type=int, default=None, help="This version (default: the latest).")
    @server_options
    @click.pass_obj
    @handle_errors
    def catalog_get(obj: Any, path: str, version: int | None) -> None:
        """Print a catalog entry's content (latest version unless --version)."""
        from noetl.api import split_catalog_ref

        path, at = split_catalog_ref(path)
        version = version or at
        if obj.server_url:
            from noetl.cli.remote import post_json

            body: dict[str, Any] = {"path": path}
            if version:
                body["version"] = version
            click.echo(post_json(obj.server_url, "/api/catalog/resource", body).get("content", ""), nl=False)
            return

        async def work(store: Any) -> str:
            from noetl.errors import NotFoundError

            entry = await store.get_catalog(path, version)
            if entry is None:
                raise NotFoundError(f"no catalog entry for path {path!r}" + (f" version {version}" if version else ""))
            return str(entry.content)

        click.echo(run_sync(with_store(work)), nl=False)

    @cli.command("register")
    @click.argument("what", required=False)
    @click.argument("target", required=False)
    @click.option("-f", "--file", "file", help="Credential or playbook file.")
    @server_options
    @click.pass_obj
    @handle_errors
    def register(obj: Any, what: str | None, target: str | None, file: str | None) -> None:
        """`register credential -f FILE`, or `register FILE` (playbook or credential)."""
        source = file or (target if what in ("credential", "playbook") else what)
        if not source:
            raise InputError("register needs a file: noetl register credential -f FILE, or noetl register FILE")
        _echo(_register(obj, source, credentials_only=what == "credential"))

    @cli.group()
    def credential() -> None:
        """Stored credentials (encrypted at rest; listed without their data)."""

    @credential.command("register")
    @click.argument("target", required=False)
    @click.option("-f", "--file", "file", help="Credential file (YAML or JSON; one, a list, or several documents).")
    @server_options
    @click.pass_obj
    @handle_errors
    def credential_register(obj: Any, target: str | None, file: str | None) -> None:
        """Store the credentials of FILE (the same as `noetl register credential -f FILE`)."""
        source = file or target
        if not source:
            raise InputError("credential register needs a file: noetl credential register -f FILE")
        _echo(_register(obj, source, credentials_only=True))

    @credential.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @server_options
    @click.pass_obj
    @handle_errors
    def credential_list(obj: Any, as_json: bool) -> None:
        """List stored credentials (name and type, never their data)."""
        if obj.server_url:
            from noetl.cli.remote import get_json

            rows = get_json(obj.server_url, "/api/credentials")
        else:
            from noetl.credentials import list_credentials

            rows = run_sync(with_store(list_credentials))
        echo_rows(rows, as_json, lambda row: (row["name"], row["type"]), empty="no credentials")

    @credential.command("delete")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
    @server_options
    @click.pass_obj
    @handle_errors
    def credential_delete(obj: Any, name: str, as_json: bool) -> None:
        """Delete the stored credential NAME."""
        if obj.server_url:
            from noetl.cli.remote import delete_json

            answer = delete_json(obj.server_url, f"/api/credentials/{name}")
        else:
            from noetl.credentials import delete_credential

            run_sync(with_store(lambda store: delete_credential(store, name)))
            answer = {"name": name, "deleted": True}
        echo_changed(answer, as_json, lambda row: (row["name"], row["type"]), "credential")

    _install_seed_aliases(cli)


def _install_seed_aliases(cli: click.Group) -> None:
    """The spellings the user guides use: `playbooks --register/--execute`, `execute playbook|status`."""
    @cli.command("playbooks")
    @click.option("--register", "register_file_", help="Playbook file to register.")
    @click.option("--execute", is_flag=True, help="Run the catalog playbook given by --path.")
    @click.option("--path", "path", help="Catalog path of the playbook to run.")
    @click.option("--payload", help="JSON object merged over the workload.")
    @click.option("--version", type=int, default=None, help="Catalog version to run (default: the latest).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @server_options
    @click.pass_obj
    @handle_errors
    def playbooks(obj: Any, register_file_: str | None, execute: bool, path: str | None, payload: str | None,
                  version: int | None, as_json: bool) -> None:
        """Register or run playbooks: `playbooks --register FILE`, `playbooks --execute --path P [--payload JSON]`."""
        if register_file_:
            _echo(_register(obj, register_file_))
        if execute:
            if not path:
                raise InputError("--execute needs --path")
            _execute(obj, path, payload, version, as_json)
        if not register_file_ and not execute:
            raise InputError("use --register FILE or --execute --path PATH")

    @cli.group("execute")
    def execute() -> None:
        """Run a catalog playbook (`execute playbook PATH`) or show a status (`execute status ID`)."""

    @execute.command("playbook")
    @click.argument("path")
    @click.option("--input", "input_file", help="JSON payload file.")
    @click.option("--payload", help="JSON object merged over the workload.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @server_options
    @click.pass_obj
    @handle_errors
    def execute_playbook(obj: Any, path: str, input_file: str | None, payload: str | None, as_json: bool) -> None:
        """Run the catalog playbook PATH (on the server when one is given, else locally)."""
        _execute(obj, path, f"@{input_file}" if input_file else payload, None, as_json,
                 field="--input" if input_file else "--payload")

    @execute.command("status")
    @click.argument("execution_id")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @server_options
    @click.pass_context
    def execute_status(ctx: click.Context, execution_id: str, as_json: bool) -> None:
        """Print the status of an execution (the same as `noetl status ID`)."""
        from noetl.cli.control import status

        ctx.invoke(status, execution_id=execution_id, as_json=as_json)



def _execute(obj: Any, path: str, payload: str | None, version: int | None, as_json: bool,
             field: str = "--payload") -> None:
    from noetl.api import parse_payload

    data = parse_payload(payload, field)
    if obj.server_url:
        from noetl.cli.remote import submit

        ref = f"catalog://{path}" + (f"@{version}" if version else "")
        _echo(submit(obj.server_url, ref, data, False))
        return
    # A catalog path wins over a directory of the same name (`examples/hello` from the repository root).
    ref = path if version is None else f"catalog://{path}@{version}"
    run_local(ref, data, False, as_json)
    sys.exit(0)


install(cli)
