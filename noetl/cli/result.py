"""`noetl result ID STEP [--index I] [--output FILE]`: a step's full result, references resolved."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

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
        _fetch_remote(obj.server_url, execution_id, step, index, output)
        return
    from noetl.results.read import step_result_json

    # The JSON as stored: a result stored by reference is written out without being decoded.
    data = run_sync(with_store(lambda store: step_result_json(store, execution_id, step, index=index)))
    if output is None:
        # The bytes as they are: decoding them to text for click.echo to encode again held the result
        # three times over (a 52 MB result took 227 MB).
        stdout = sys.stdout.buffer
        stdout.write(data)
        stdout.write(b"\n")
        stdout.flush()
        return
    from noetl.fileperms import write_private

    try:
        write_private(output, data, b"\n")
    except OSError as exc:
        raise InputError(f"--output {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output} ({len(data)} bytes)", err=True)


def _fetch_remote(server_url: str, execution_id: str, step: str, index: int | None, output: Path | None) -> None:
    # The server's bytes go straight to stdout or the file: decoding a result of hundreds of MB
    # into Python objects took several times its size in memory.
    from noetl.cli.remote import stream_bytes

    query = f"?index={index}" if index is not None else ""
    path = f"/api/executions/{execution_id}/results/{step}{query}"
    if output is None:
        stdout = sys.stdout.buffer
        stream_bytes(server_url, path, stdout.write)
        stdout.write(b"\n")
        return
    from noetl.fileperms import write_private

    opened: list[BinaryIO] = []

    def write(chunk: bytes) -> None:
        if not opened:  # a refused request leaves the file as it was
            write_private(output, b"")  # owner-only before the first byte arrives
            opened.append(output.open("ab"))
        opened[0].write(chunk)

    try:
        size = stream_bytes(server_url, path, write)
        write(b"\n")
    except OSError as exc:
        raise InputError(f"--output {output}: {exc.strerror or exc}") from None
    finally:
        for file in opened:
            file.close()
    click.echo(f"wrote {output} ({size} bytes)", err=True)
