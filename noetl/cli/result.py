"""`noetl result ID STEP [--index I] [--output FILE]`: a step's full result, references resolved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from noetl.cli.app import Context, cli, handle_errors, run_sync, with_store
from noetl.errors import InputError


@cli.command()
@click.argument("execution_id")
@click.argument("step")
@click.option("--index", type=int, default=None, help="One iteration of a loop step (0-based).")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON to FILE instead of stdout.")
@click.pass_obj
@handle_errors
def result(obj: Context, execution_id: str, step: str, index: int | None, output: Path | None) -> None:
    """Print a step's result in full (a result stored by reference is fetched)."""
    if obj.server_url:
        from noetl.cli.remote import get_json

        query = f"?index={index}" if index is not None else ""
        value: Any = get_json(obj.server_url, f"/api/executions/{execution_id}/results/{step}{query}")
        data = json.dumps(value, default=str).encode("utf-8")
    else:
        from noetl.results.read import step_result_json

        # The JSON as stored: a result stored by reference is written out without being decoded.
        data = run_sync(with_store(lambda store: step_result_json(store, execution_id, step, index=index)))
    if output is None:
        click.echo(data.decode("utf-8"))
    else:
        from noetl.fileperms import write_private

        try:
            write_private(output, data + b"\n")
        except OSError as exc:
            raise InputError(f"--output {output}: {exc.strerror or exc}") from None
        click.echo(f"wrote {output} ({len(data)} bytes)", err=True)
