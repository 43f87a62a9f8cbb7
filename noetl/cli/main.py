"""`noetl`: run, validate and inspect playbooks; manage the catalog, credentials and the runtime.

Exit codes: 0 success, 1 the execution failed or was cancelled, 2 invalid playbook or arguments.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from typing import Any, TypeVar

import click

from noetl.errors import NoetlError, NotFoundError, PlaybookError

T = TypeVar("T")
EXIT_FAILED = 1
EXIT_INVALID = 2


def _fail(message: str, code: int = EXIT_INVALID) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: Callable[..., T]) -> Callable[..., T]:
    """User mistakes become one line on stderr with the right exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except NoetlError as exc:
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                  EXIT_FAILED if type(exc).__name__ == "StoreError" else EXIT_INVALID)
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_FAILED)
        raise AssertionError("unreachable")

    return wrapper


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def with_store(action: Callable[[Any], Awaitable[T]]) -> T:
    from noetl.api import open_store

    store = await open_store()
    try:
        return await action(store)
    finally:
        await store.close()


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def echo_rows(rows: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str]) -> None:
    """A listing: one JSON array with ``--json``, else one ``line(row)`` per row."""
    if as_json:
        click.echo(json.dumps(rows, default=str))
        return
    for row in rows:
        click.echo(line(row))


class Context:
    def __init__(self, server_url: str | None) -> None:
        self.server_url = server_url


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server-url", envvar="NOETL_SERVER_URL", default=None, help="NoETL server (distributed runtime).")
@click.option("--host", default=None, help="Server host (with --port).")
@click.option("--port", type=int, default=None, help="Server port; alone it means a server on localhost.")
@click.version_option(package_name="noetl")
@click.pass_context
def cli(ctx: click.Context, server_url: str | None, host: str | None, port: int | None) -> None:
    """NoETL: run playbooks that orchestrate APIs, databases and scripts."""
    if server_url is None and (host or port):
        server_url = f"http://{host or 'localhost'}:{port or 8082}"
    ctx.obj = Context(server_url)


# run / exec --------------------------------------------------------------------------------
def _payload(payload: str | None, sets: tuple[str, ...]) -> dict[str, Any]:
    from noetl.api import apply_sets, parse_payload

    return apply_sets(parse_payload(payload), sets)


def _print_warnings(loaded: Any) -> None:
    for problem in loaded.warnings:
        click.echo(str(problem), err=True)


def _run_local(ref: str, payload: dict[str, Any], merge: bool, as_json: bool, strict: bool = False) -> None:
    from noetl.api import resolve_playbook, run_async
    from noetl.cli.progress import make_progress

    async def main(store: Any) -> dict[str, Any]:
        loaded = await resolve_playbook(ref, store)
        loaded.require(strict=strict)
        _print_warnings(loaded)
        progress = make_progress(True)
        try:
            return await run_async(ref, store=store, payload=payload, merge=merge, listener=progress,
                                   loaded=loaded)
        finally:
            if progress is not None:
                progress.close()

    doc = run_sync(with_store(main))
    if as_json:
        click.echo(json.dumps(doc, default=str))
    else:
        _print_summary(doc)
    sys.exit(0 if doc["status"] == "completed" else EXIT_FAILED)


def _print_summary(doc: dict[str, Any]) -> None:
    click.echo(f"execution {doc['execution_id']}: {doc['status']} in {doc.get('duration_seconds')} s")
    if doc["status"] == "completed":
        click.echo("result: " + json.dumps(doc["result"], default=str)[:2000])
    else:
        click.echo(f"error: {doc.get('error')}")


@cli.command()
@click.argument("ref")
@click.option("--payload", help="JSON object, or @file.json, merged over the workload.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set one payload value (YAML scalar).")
@click.option("--merge", is_flag=True, help="Deep-merge the payload into the workload.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON status document.")
@click.option("--strict", is_flag=True, help="Treat warnings (unknown keys) as errors.")
@handle_errors
def run(ref: str, payload: str | None, sets: tuple[str, ...], merge: bool, as_json: bool, strict: bool) -> None:
    """Run a playbook locally and wait (REF: file or catalog://path[@version])."""
    _run_local(ref, _payload(payload, sets), merge, as_json, strict)


@cli.command("exec")
@click.argument("ref")
@click.option("-r", "--runtime", type=click.Choice(["local", "distributed", "auto"]), default="auto")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; run nothing.")
@click.option("--payload")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@click.option("--merge", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handle_errors
def exec_(obj: Context, ref: str, runtime: str, dry_run: bool, payload: str | None, sets: tuple[str, ...],
          merge: bool, as_json: bool) -> None:
    """Like `run`; `-r distributed` submits to the server. A file runs locally under `auto`."""
    data = _payload(payload, sets)
    distributed = runtime == "distributed" or (runtime == "auto" and obj.server_url and _is_catalog_ref(ref))
    if dry_run:
        _dry_run(ref, obj if distributed else None)
        return
    if distributed:
        from noetl.cli.remote import submit

        print_json(submit(obj.server_url, ref, data, merge))
        return
    _run_local(ref, data, merge, as_json)


def _is_catalog_ref(ref: str) -> bool:
    import os

    return ref.startswith("catalog://") or not os.path.exists(ref)


def _dry_run(ref: str, remote: Context | None) -> None:
    from noetl.api import resolve_playbook

    if remote is not None and remote.server_url and _is_catalog_ref(ref):
        from noetl.cli.remote import fetch_catalog_content
        from noetl.dsl.parse import load_playbook_text

        loaded = load_playbook_text(fetch_catalog_content(remote.server_url, ref), ref)
    else:
        loaded = run_sync(with_store(lambda store: resolve_playbook(ref, store)))
    playbook = loaded.require()
    _print_warnings(loaded)
    plan = {"path": playbook.path, "entry_step": playbook.entry_step, "valid": True,
            "steps": [{"step": s.step, "tool": s.kind, "loop": bool(s.loop),
                       "next": [a.step for a in s.next.arcs if a.step]} for s in playbook.workflow]}
    print_json(plan)


# validate / migrate / schema ---------------------------------------------------------------
@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--strict", is_flag=True, help="Unknown keys are errors, not warnings.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def validate(files: tuple[str, ...], strict: bool, as_json: bool) -> None:
    """Check playbooks; errors as file:line:col: message. Exit 2 on any error."""
    from noetl.api import validate_playbook

    failed = False
    report: dict[str, Any] = {}
    for file in files:
        problems = validate_playbook(file)
        blocking = [p for p in problems if p.severity == "error" or (strict and p.severity == "warning")]
        failed = failed or bool(blocking)
        report[file] = [p.to_dict() for p in problems]
        if not as_json:
            for problem in problems:
                severity = "error" if problem in blocking else problem.severity
                click.echo(f"{problem.where}: {severity}: {problem.message}", err=severity != "note")
            if not blocking:
                click.echo(f"{file}: ok")
    if as_json:
        print_json(report)
    sys.exit(EXIT_INVALID if failed else 0)


@cli.command()
@click.argument("file")
@handle_errors
def migrate(file: str) -> None:
    """Print the canonical form of a v1 / case-era playbook."""
    from noetl.dsl.migrate import canonical_yaml
    from noetl.dsl.parse import load_playbook

    loaded = load_playbook(file)
    loaded.require()
    click.echo(canonical_yaml(loaded), nl=False)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the playbook DSL (for editors' YAML plugins)."""
    from noetl.dsl.schema import playbook_schema

    print_json(playbook_schema())


# status / events / cancel ------------------------------------------------------------------
@cli.command()
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handle_errors
def status(obj: Context, execution_id: str, as_json: bool) -> None:
    """Show an execution's status document."""
    doc = _status_doc(obj, execution_id)
    if as_json:
        click.echo(json.dumps(doc, default=str))
        return
    click.echo(f"execution {doc['execution_id']} ({doc['path']}): {doc['status']}")
    for name, step in doc["steps"].items():
        click.echo(f"  {name}: {step['status']}")
    if doc.get("error"):
        click.echo(f"error: {doc['error']}")


def _status_doc(obj: Context, execution_id: str) -> dict[str, Any]:
    if obj.server_url:
        from noetl.cli.remote import get_json

        return get_json(obj.server_url, f"/api/executions/{execution_id}/status")

    async def load(store: Any) -> dict[str, Any]:
        from noetl.engine.status import status_document

        if await store.get_execution(execution_id) is None:
            raise NotFoundError(f"execution {execution_id} not found")
        return status_document(await store.list_events(execution_id))

    return run_sync(with_store(load))


@cli.command()
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True)
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
    echo_rows(rows, as_json, lambda row: f"{row['event_id']:>5} {row['created_at']} {row['event_type']:<20} "
                                         f"{row.get('node_name') or '':<24} {row.get('status') or ''}")


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


# catalog and credentials -------------------------------------------------------------------
from noetl.cli import catalog as _catalog_commands  # noqa: E402

_catalog_commands.install(cli)

from noetl.cli import distributed as _distributed_commands  # noqa: E402

_distributed_commands.install(cli)
__import__("noetl.cli.demo", fromlist=["install"]).install(cli)  # `noetl demo`: services, postgres


def main() -> None:
    try:
        cli.main(prog_name="noetl", standalone_mode=True)
    except PlaybookError as exc:  # pragma: no cover - handled per command
        _fail(str(exc))


if __name__ == "__main__":
    main()
