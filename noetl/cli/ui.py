"""`noetl ui`: the web console over the local store (the executions `noetl run` recorded)."""

from __future__ import annotations

import click

from noetl.cli.app import PORT, cli, handle_errors, require_listenable


@cli.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=PORT, default=8083, show_default=True, help="Port to listen on.")
@handle_errors
def ui(host: str, port: int) -> None:
    """Open the web console over the local store ($NOETL_HOME)."""
    import uvicorn

    from noetl.server.console.local import create_local_app
    from noetl.server.slowclients import protocol_with_deadline
    from noetl.server.tokens import check_bind, registry_from_settings
    from noetl.settings import load_settings

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    tokens = registry_from_settings(settings)
    check_bind(host, tokens)  # beyond this machine only with tokens, as for the server
    require_listenable(host, port)
    app = create_local_app(settings.sqlite_path, tokens=tokens)
    click.echo(f"NoETL console on http://{host}:{port}/ (local store {settings.sqlite_path})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning",
                http=protocol_with_deadline(settings.request_timeout_seconds))
