"""`noetl run` and `noetl exec`: run a playbook locally, or submit it to a server."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from noetl.cli.app import EXIT_FAILED, Context, cli, handle_errors, print_json, run_sync, with_store
from noetl.cli.startup import long_lived_imports


def payload_from_options(payload: str | None, sets: tuple[str, ...]) -> dict[str, Any]:
    from noetl.api import apply_sets, parse_payload

    return apply_sets(parse_payload(payload), sets)


def print_warnings(loaded: Any) -> None:
    for problem in loaded.key_warnings:
        click.echo(str(problem), err=True)


def print_run_warnings(loaded: Any, doc: dict[str, Any]) -> None:
    """The status document's template warnings, once each, on stderr, at the playbook's file:line."""
    warnings = doc.get("warnings") or []
    if not warnings:
        return
    from noetl.dsl.locate import locate

    for warning in warnings:
        where = locate(loaded.source, warning.get("step"), warning.get("field"))
        step = f"step {warning['step']!r} " if warning.get("step") else ""
        click.echo(f"{where}: warning: {step}{warning.get('field')}: {warning.get('message')}", err=True)


def run_local(ref: str, payload: dict[str, Any], merge: bool, as_json: bool, strict: bool = False) -> None:
    with long_lived_imports():  # the runtime's modules live as long as the process
        from noetl.api import resolve_playbook, run_async
        from noetl.cli.progress import PlaybookSource, make_progress
        from noetl.cli.rootdoc import RootStatus

    root = RootStatus()
    playbooks: list[Any] = []  # the loaded playbook, for the file:line of the run's warnings

    async def main(store: Any) -> dict[str, Any]:
        from noetl.runtime.owner import record_abandoned

        await record_abandoned(store)
        loaded = await resolve_playbook(ref, store)
        loaded.require(strict=strict)
        print_warnings(loaded)
        playbooks.append(loaded)
        progress = make_progress(True, PlaybookSource(loaded.source.file, loaded.source.text))
        root.forward = progress
        try:
            return await run_async(ref, store=store, payload=payload, merge=merge, strict=strict, listener=root,
                                   loaded=loaded)
        finally:
            if progress is not None:
                progress.close()

    try:
        doc = run_sync(with_store(main))
    except KeyboardInterrupt:
        if root.doc is None:
            raise
        doc = root.doc  # the runtime recorded the cancellation before the interrupt got here
    if playbooks:
        print_run_warnings(playbooks[0], doc)
    if as_json:
        click.echo(json.dumps(doc, default=str))
    else:
        print_summary(doc)
    sys.exit(0 if doc["status"] == "completed" else EXIT_FAILED)


def print_summary(doc: dict[str, Any]) -> None:
    seconds = doc.get("duration_seconds")
    took = f" in {seconds:.3f} s" if isinstance(seconds, int | float) else ""
    click.echo(f"execution {doc['execution_id']}: {doc['status']}{took}")
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
@click.option("--strict", is_flag=True,
              help="Unknown keys are errors, and so is a template using an undefined name.")
@click.pass_obj
@handle_errors
def run(obj: Context, ref: str, payload: str | None, sets: tuple[str, ...], merge: bool, as_json: bool,
        strict: bool) -> None:
    """Run a playbook locally and wait (REF: file or catalog://path[@version])."""
    if obj.server_url:
        # A server option does not make `run` distributed; say so instead of ignoring it.
        target = ref if ref.startswith("catalog://") else "catalog://PATH (after noetl catalog register FILE there)"
        click.echo(f"note: `noetl run` runs in this process on the local store; to run on the server at "
                   f"{obj.server_url}: noetl exec {target} -r distributed --wait", err=True)
    run_local(ref, payload_from_options(payload, sets), merge, as_json, strict)


@cli.command("exec")
@click.argument("ref")
@click.option("-r", "--runtime", type=click.Choice(["local", "distributed", "auto"]), default="auto", show_default=True,
              help="local: in this process; distributed: on the server; auto: a catalog path on the server when "
                   "one is configured, else locally.")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; run nothing.")
@click.option("--payload", help="JSON object, or @file.json, merged over the workload.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set one payload value (YAML scalar).")
@click.option("--merge", is_flag=True, help="Deep-merge the payload into the workload.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--wait", is_flag=True, help="With -r distributed: wait for the end and exit like `run`.")
@click.pass_obj
@handle_errors
def exec_(obj: Context, ref: str, runtime: str, dry_run: bool, payload: str | None, sets: tuple[str, ...],
          merge: bool, as_json: bool, wait: bool) -> None:
    """Like `run`; `-r distributed` submits to the server. A file runs locally under `auto`."""
    data = payload_from_options(payload, sets)
    distributed = runtime == "distributed" or (runtime == "auto" and obj.server_url and _is_catalog_ref(ref))
    if dry_run:
        _dry_run(ref, obj if distributed else None)
        return
    if distributed:
        from noetl.cli.remote import submit

        started = submit(obj.server_url, ref, data, merge)
        if not wait:
            print_json(started)
            return
        wait_remote(obj, str(started["execution_id"]), as_json)
    run_local(ref, data, merge, as_json)


def wait_remote(obj: Context, execution_id: str, as_json: bool) -> None:
    """Follow an execution on the server to its end; exit like `run` (0 completed, 1 otherwise)."""
    from noetl.cli.control import playbook_file, status_doc
    from noetl.cli.watching import watch_with_progress

    watch_with_progress(obj, execution_id, playbook_file(obj, execution_id, status_doc(obj, execution_id)))
    doc = status_doc(obj, execution_id)
    if as_json:
        click.echo(json.dumps(doc, default=str))
    else:
        print_summary(doc)
    sys.exit(0 if doc["status"] == "completed" else EXIT_FAILED)


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
    print_warnings(loaded)
    plan = {"path": playbook.path, "entry_step": playbook.entry_step, "valid": True,
            "steps": [{"step": s.step, "tool": s.kind, "loop": bool(s.loop),
                       "next": [a.step for a in s.next.arcs if a.step]} for s in playbook.workflow]}
    print_json(plan)
