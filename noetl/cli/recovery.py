"""`noetl rerun` and `noetl resume`: run an execution again, or continue it in place."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click

from noetl.cli.app import EXIT_FAILED, Context, cli, handle_errors, print_json, run_sync, with_store
from noetl.runtime.request import RunRequest

_WAIT_HELP = "With a server: wait for the end and exit like `run` (locally it always waits)."


def _answer(obj: Context, answer: Any, as_json: bool, wait: bool) -> None:
    """The server's answer; with ``wait``, the execution followed to its end instead."""
    if not wait:
        print_json(answer)
        return
    from noetl.cli.running import wait_remote

    wait_remote(obj, str(answer["execution_id"]), as_json)


def _source(request: RunRequest) -> Any:
    """Where a failed call's error is pointed at: the file the original `noetl run` ran (its first
    event says), else the playbook's path, as `noetl status` names it."""
    from noetl.cli.progress import PlaybookSource

    first = request.resume[0] if request.resume else None
    file = (first.meta.get("source_file") if first else None) or request.playbook.metadata.path or "playbook"
    return PlaybookSource(str(file), request.playbook_text)


def _run_and_report(prepare: Callable[[Any], Awaitable[RunRequest]], as_json: bool) -> None:
    from noetl.cli.progress import make_progress
    from noetl.cli.running import print_summary
    from noetl.runtime.recovery import run_request

    async def main(store: Any) -> dict[str, Any]:
        request = await prepare(store)
        progress = make_progress(True, _source(request))
        try:
            return await run_request(store, request, listener=progress)
        finally:
            if progress is not None:
                progress.close()

    doc = run_sync(with_store(main))
    if as_json:
        click.echo(json.dumps(doc, default=str))
    else:
        print_summary(doc)
    sys.exit(0 if doc["status"] == "completed" else EXIT_FAILED)


@cli.command()
@click.argument("execution_id")
@click.option("--from", "from_step", metavar="STEP", help="Reuse the steps that completed before STEP; start at STEP.")
@click.option("--payload", help="JSON object, or @file.json, over the original payload.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set one payload value (YAML scalar).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON status document.")
@click.option("--wait", is_flag=True, help=_WAIT_HELP)
@click.pass_obj
@handle_errors
def rerun(obj: Context, execution_id: str, from_step: str | None, payload: str | None, sets: tuple[str, ...],
          as_json: bool, wait: bool) -> None:
    """Start a new execution of the same playbook version and payload."""
    from noetl.cli.running import payload_from_options

    overrides = payload_from_options(payload, sets)
    if obj.server_url:
        from noetl.cli.remote import post_json

        body = {"from_step": from_step, "payload": overrides}
        _answer(obj, post_json(obj.server_url, f"/api/executions/{execution_id}/rerun", body), as_json, wait)
        return
    from noetl.runtime.recovery import rerun_request

    _run_and_report(lambda store: rerun_request(store, execution_id, from_step=from_step, payload=overrides),
                    as_json)


@cli.command()
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON status document.")
@click.option("--wait", is_flag=True, help=_WAIT_HELP)
@click.pass_obj
@handle_errors
def resume(obj: Context, execution_id: str, as_json: bool, wait: bool) -> None:
    """Continue a failed, cancelled or abandoned execution in place."""
    if obj.server_url:
        from noetl.cli.remote import post_json

        _answer(obj, post_json(obj.server_url, f"/api/executions/{execution_id}/resume", {}), as_json, wait)
        return
    from noetl.runtime.recovery import resume_request

    _run_and_report(lambda store: resume_request(store, execution_id), as_json)
