"""`noetl demo services` and `noetl demo postgres`: what the examples need, on this machine."""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import yaml

from noetl.cli.app import PORT, cli

CREDENTIAL_NAME = "pg_local"


def install(cli: click.Group) -> None:
    @cli.group()
    def demo() -> None:
        """Local stand-ins for trying the examples offline (docs/examples.md)."""

    demo.add_command(services)
    demo.add_command(postgres)


# services ------------------------------------------------------------------------------------
@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--latency-ms", type=float, default=0.0, show_default=True, help="Delay added to every answer.")
@click.option("--jitter-ms", type=float, default=0.0, show_default=True, help="Plus a random 0..N ms.")
@click.option("--failure-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of requests answered with --failure-status.")
@click.option("--failure-status", type=int, default=503, show_default=True, help="HTTP status of an injected failure.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed for weather, profiles and failures.")
@click.option("--api-key", default=None, help="Require this key (X-API-Key header) on the weather API.")
@click.option("--log-requests", is_flag=True, help="Print one line per request.")
def services(host: str, port: int, latency_ms: float, jitter_ms: float, failure_rate: float, failure_status: int,
             seed: int, api_key: str | None, log_requests: bool) -> None:
    """Run the stand-in HTTP services (weather, traveler profiles, pagination, /get) in the foreground."""
    from noetl.demo.services import DemoServices, ServiceSettings

    settings = ServiceSettings(latency_ms=latency_ms, jitter_ms=jitter_ms, failure_rate=failure_rate,
                               failure_status=failure_status, seed=seed, api_key=api_key)
    try:
        server = DemoServices(settings, host=host, port=port,
                              access_log=(lambda line: click.echo(line, err=True)) if log_requests else None)
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    click.echo(server.url)
    click.echo(
        f"noetl demo services on {server.url} (latency {latency_ms:g} ms, failure rate {failure_rate:g}, "
        f"seed {seed}{', API key required' if api_key else ''}); Ctrl-C stops\n"
        f"  {server.url}/v1/forecast?latitude=51.51&longitude=-0.13&current_weather=true\n"
        f"  {server.url}/anything/traveler-profile?traveler_id=1\n"
        f"  {server.url}/paginated?page=1\n"
        f"  {server.url}/get",
        err=True,
    )
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


def _stop_on_sigterm(_signum: int, _frame: Any) -> None:
    # `kill PID` stops the foreground server as cleanly as Ctrl-C does.
    raise KeyboardInterrupt


# postgres ------------------------------------------------------------------------------------
@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Cluster directory (default: $NOETL_HOME/demo-postgres; as root /tmp/noetl-demo-postgres).")
@click.option("--port", type=PORT, default=None, help="TCP port (default 54321, or the one it used before).")
@click.option("--register", "register_", is_flag=True, help=f"Also register it as credential {CREDENTIAL_NAME!r}.")
@click.option("--stop", is_flag=True, help="Stop the cluster instead.")
@click.pass_obj
def postgres(obj: Any, directory: str | None, port: int | None, register_: bool, stop: bool) -> None:
    """Start a local throwaway PostgreSQL for the examples and print how to use it."""
    from noetl.demo import postgres as demo_postgres

    base = Path(directory) if directory else demo_postgres.default_demo_dir()
    try:
        if stop:
            stopped = demo_postgres.stop_demo_postgres(base)
            click.echo(f"demo PostgreSQL in {base} {'stopped' if stopped else 'was not running'}")
            return
        info, what = demo_postgres.start_demo_postgres(base, port)
    except demo_postgres.PostgresUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except RuntimeError as exc:  # initdb or pg_ctl failed: their own words are on the next lines
        click.echo(f"error: {str(exc).strip().splitlines()[0]} (server log: {base / 'server.log'})", err=True)
        sys.exit(1)
    credential_file = _write_credential_file(Path(info.base), info.credential(CREDENTIAL_NAME))
    click.echo(info.url)
    click.echo(
        f"demo PostgreSQL {what} in {info.base} (stop it with: noetl demo postgres --stop"
        f"{f' --dir {directory}' if directory else ''})\n"
        f"register it for the examples as credential {CREDENTIAL_NAME!r}:\n"
        f"  noetl register credential -f {credential_file}\n"
        f"or, equivalently, the file the examples ship (same values on the default port):\n"
        f"  noetl register credential -f examples/credentials/pg_local.yaml\n"
        f"psql: psql '{info.url}'",
        err=True,
    )
    if register_:
        _register_credential(obj, credential_file)
        click.echo(f"registered credential {CREDENTIAL_NAME!r}", err=True)


def _write_credential_file(base: Path, credential: dict[str, Any]) -> Path:
    """The credential as a file beside the cluster (mode 0600: it holds the password)."""
    path = base / f"{CREDENTIAL_NAME}.yaml"
    with tempfile.NamedTemporaryFile("w", dir=base, delete=False, suffix=".tmp", encoding="utf-8") as handle:
        yaml.safe_dump(credential, handle, sort_keys=False)
    Path(handle.name).chmod(0o600)
    Path(handle.name).replace(path)
    return path


def _register_credential(obj: Any, credential_file: Path) -> None:
    from noetl.cli.catalog import _register
    from noetl.errors import NoetlError

    try:
        _register(obj, str(credential_file))
    except NoetlError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


install(cli)
