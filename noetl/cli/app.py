"""The `noetl` click group and the helpers every command module shares.

Command modules (`running`, `checks`, `inspect`, `catalog`, ...) import from here and register
their commands on `cli`; `main.py` only assembles them, so no module imports `main`.

Exit codes: 0 success, 1 the execution failed or was cancelled, 2 invalid playbook or arguments.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import wraps
from typing import Any, TypeVar

import click

from noetl.cli.startup import long_lived_imports
from noetl.errors import NoetlError
from noetl.logredact import install_log_redaction

T = TypeVar("T")
EXIT_FAILED = 1
EXIT_INVALID = 2
PORT = click.IntRange(1, 65535)  # a bad --port is a usage error, not a traceback from the socket


def fail(message: str, code: int = EXIT_INVALID) -> None:
    # A message may quote a URL or connection string the user gave (a server URL with user:password);
    # its password never reaches the terminal or a CI log.
    from noetl.secrets import redact_connection_secrets

    click.echo(f"error: {redact_connection_secrets(message)}", err=True)
    sys.exit(code)


def require_listenable(host: str, port: int) -> None:
    """One line and exit 2 when ``host:port`` cannot be listened on (a port in use, an address not
    of this machine), before a server starts: uvicorn would log a traceback-like line and exit 3."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def handle_errors(func: Callable[..., T]) -> Callable[..., T]:
    """User mistakes become one line on stderr with the right exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except NoetlError as exc:
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                  EXIT_FAILED if type(exc).__name__ in ("StoreError", "ConnectionRefused", "WorkerError") else EXIT_INVALID)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_FAILED)
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


def on_server_or_store(obj: Context, *, server: Callable[[str], T], store: Callable[[Any], Awaitable[T]]) -> T:
    """A command that works against a server (``--server-url``) or the local store: ``server`` gets
    the server URL, ``store`` the opened local store."""
    if obj.server_url:
        return server(obj.server_url)
    return run_sync(with_store(store))


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def echo_rows(rows: list[dict[str, Any]], as_json: bool, cells: Callable[[dict[str, Any]], Sequence[str]],
              empty: str = "") -> None:
    """A listing: one JSON array with ``--json``, else one line per row of the ``cells(row)``, in
    columns as wide as their widest cell (a name longer than usual shifts the column, not the line).
    An empty listing says ``empty`` on stderr (stdout stays empty, for scripts)."""
    if as_json:
        click.echo(json.dumps(rows, default=str))
        return
    if not rows and empty:
        click.echo(empty, err=True)
    for line in aligned([tuple(cells(row)) for row in rows]):
        click.echo(line)


def echo_changed(view: dict[str, Any], as_json: bool, cells: Callable[[dict[str, Any]], Sequence[str]],
                 noun: str) -> None:
    """The answer of an add or a delete: its JSON with ``--json``, else the thing's line of its
    listing (``cells``), or ``deleted NOUN NAME``."""
    if as_json:
        print_json(view)
    elif view.get("deleted"):
        click.echo(f"deleted {noun} {view['name']}")
    else:
        click.echo("  ".join(cells(view)))


def aligned(lines: list[tuple[str, ...]]) -> list[str]:
    """``lines`` of cells as text columns two spaces apart; the last cell is not padded."""
    widths = [max((len(cells[i]) for cells in lines if len(cells) > i), default=0)
              for i in range(max((len(cells) for cells in lines), default=0))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False)).rstrip()
            for cells in lines]


class Context:
    """What the group's options say. ``server_url`` is the flag's, else ``NOETL_SERVER_URL``
    (read only when a command asks for it, so commands that never talk to a server do not load
    the settings)."""

    def __init__(self, server_url: str | None) -> None:
        self._server_url = server_url

    @property
    def server_url(self) -> str | None:
        if self._server_url is not None:
            return self._server_url
        from noetl.settings import load_settings

        return load_settings().server_url

    @server_url.setter
    def server_url(self, value: str | None) -> None:
        self._server_url = value

    @property
    def server_from_options(self) -> bool:
        """Whether the server was named on the command line (else it comes from NOETL_SERVER_URL)."""
        return self._server_url is not None


class LazyGroup(click.Group):
    """A group whose commands live in modules imported only when one of their commands is used.

    ``lazy`` maps a command name to the module that registers it on this group, so `noetl run`
    imports the run command and what it needs, not the server, the console or the demo services.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            with long_lived_imports():
                importlib.import_module(self.lazy[cmd_name])
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            hint = _command_hint(name, self.list_commands(ctx), top=ctx.parent is None)
            raise click.UsageError(f"No such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)


# Commands of other tools that `noetl` spells otherwise (at the top level only).
_OTHER_SPELLINGS = {"watch": "noetl status ID --watch, or noetl logs ID --follow",
                    "ps": "noetl executions --status running", "list": "noetl executions"}


def _command_hint(name: str, commands: list[str], *, top: bool) -> str:
    if top and name in _OTHER_SPELLINGS:
        return f" Did you mean: {_OTHER_SPELLINGS[name]}?"
    import difflib

    close = difflib.get_close_matches(name, commands, n=2)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server-url", default=None, help="NoETL server (distributed runtime; default: NOETL_SERVER_URL).")
@click.option("--host", default=None, help="Server host (with --port).")
@click.option("--port", type=PORT, default=None, help="Server port; alone it means a server on localhost.")
@click.version_option(package_name="noetl")
@click.pass_context
def cli(ctx: click.Context, server_url: str | None, host: str | None, port: int | None) -> None:
    """NoETL: run playbooks that orchestrate APIs, databases and scripts."""
    install_log_redaction()
    if server_url is None and (host or port):
        server_url = f"http://{host or 'localhost'}:{port or 8082}"
    ctx.obj = Context(server_url)


