"""`noetl ui`: the web console over the local store (the executions `noetl run` recorded)."""

from __future__ import annotations

import click

from noetl.cli.app import cli, handle_errors


@cli.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8083, show_default=True, help="Port to listen on.")
@handle_errors
def ui(host: str, port: int) -> None:
    """Open the web console over the local store ($NOETL_HOME)."""
    import uvicorn

    from noetl.server.console.local import create_local_app
    from noetl.settings import load_settings

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.api_token:
        from noetl.errors import InputError

        raise InputError(f"--host {host}: set NOETL_API_TOKEN before serving the console beyond this machine")
    app = create_local_app(settings.sqlite_path, api_token=settings.api_token)
    click.echo(f"NoETL console on http://{host}:{port}/ (local store {settings.sqlite_path})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
