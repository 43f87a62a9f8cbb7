"""Options shared by commands that can talk to a server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from noetl.cli.app import PORT

F = TypeVar("F", bound=Callable[..., Any])


def _set_server(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is None:
        return value
    if param.name == "_host":
        ctx.meta["noetl_host"] = value
    elif param.name == "_port":
        ctx.obj.server_url = f"http://{ctx.meta.get('noetl_host') or 'localhost'}:{value}"
    else:
        ctx.obj.server_url = value
    return value


def server_options(func: F) -> F:
    """`--port N` (and `--host H`, `--server-url URL`) after the command too, as the user guides
    write them: `noetl playbooks --register FILE --port 8080`."""
    func = click.option("--server-url", "_server_url", default=None, expose_value=False,
                        callback=_set_server, help="NoETL server URL.")(func)
    func = click.option("--port", "_port", type=PORT, default=None, expose_value=False, callback=_set_server,
                        help="Server port (on --host, default localhost).")(func)
    func = click.option("--host", "_host", default=None, expose_value=False, is_eager=True,
                        callback=_set_server, help="Server host (with --port).")(func)
    return func
