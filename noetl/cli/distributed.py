"""The distributed runtime's commands: `server start`, `worker start`, `db init`, `query`.

Heavy imports (FastAPI, uvicorn, the PostgreSQL store) happen inside the commands, so `noetl run`
starts as fast without them.
"""

from __future__ import annotations

import json
from typing import Any

import click

from noetl.cli.app import PORT, cli, handle_errors, require_listenable, run_sync
from noetl.errors import ForbiddenError, InputError


def _database_url(url: str | None) -> str:
    from noetl.settings import load_settings

    url = url or load_settings().database_url
    if not url:
        raise InputError("no database: set NOETL_DATABASE_URL=postgresql://user:password@host:port/db "
                         "or pass --database-url")
    if not url.startswith(("postgresql://", "postgres://")):
        raise InputError("the distributed runtime needs PostgreSQL: NOETL_DATABASE_URL must start with postgresql://")
    return url


def _reap_interval(lease_seconds: float) -> float:
    """Look for expired leases a few times per lease, but not more than every 5 s."""
    return max(0.2, min(5.0, lease_seconds / 3))


POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)
LOG_LEVEL = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)


def _logging(level: str, log_format: str = "text") -> None:
    from noetl.logsetup import configure_logging

    configure_logging(level, log_format)


log_format_option = click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
                                 help="Log lines as text, or as one JSON object each (with execution_id, step, "
                                      "command_id where they apply).")


def install(cli: click.Group) -> None:
    database_option = click.option("--database-url", default=None, metavar="URL",
                                   help="PostgreSQL URL (default: NOETL_DATABASE_URL).")

    @cli.group()
    def server() -> None:
        """The REST API server of the distributed runtime."""

    @server.command("start")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to listen on; another than loopback needs API tokens (NOETL_API_TOKEN).")
    @click.option("--port", type=PORT, default=8082, show_default=True, help="TCP port to listen on.")
    @database_option
    @click.option("--log-level", type=LOG_LEVEL, default="info", show_default=True, help="Log level.")
    @log_format_option
    @handle_errors
    def server_start(host: str, port: int, database_url: str | None, log_level: str, log_format: str) -> None:
        """Serve the API (migrations are applied at start-up)."""
        import uvicorn

        from noetl.sandbox import require_confinement
        from noetl.server.app import create_app
        from noetl.server.slowclients import protocol_with_deadline
        from noetl.server.state import ServerConfig
        from noetl.server.tokens import check_bind, registry_from_settings
        from noetl.settings import load_settings
        from noetl.tools.environment import protect_process_environment

        protect_process_environment()  # its settings: out of reach of the tools of workers on this host

        settings = load_settings()
        tokens = registry_from_settings(settings)
        check_bind(host, tokens)
        require_listenable(host, port)
        config = ServerConfig(database_url=_database_url(database_url), tokens=tokens,
                              sql_api_enabled=settings.enable_sql_api, sql_api_writable=settings.sql_api_write,
                              max_attempts=settings.max_attempts, max_body_bytes=settings.max_body_bytes,
                              reap_interval=_reap_interval(settings.lease_seconds),
                              request_timeout_seconds=settings.request_timeout_seconds)
        _logging(log_level, log_format)
        require_confinement()  # the server resolves child playbook files for remote workers
        # A database it cannot reach or migrate is one line and exit code here, before uvicorn would
        # report the same failure of the app's start-up as a traceback.
        run_sync(_migrate_or_fail(config.database_url))
        # log_config=None: uvicorn's loggers go through the handler configured above (format, redaction).
        uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, log_config=None,
                    http=protocol_with_deadline(settings.request_timeout_seconds))

    @cli.group()
    def worker() -> None:
        """Workers that lease commands (from PostgreSQL, or through a server's API) and run them."""

    @worker.command("start")
    @click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Commands run at once (NOETL_WORKER_CONCURRENCY, 8).")
    @click.option("--name", default="", help="Worker name in leases and events (default: host-pid).")
    @click.option("--lease-seconds", type=POSITIVE_SECONDS, default=None, help="Lease length (NOETL_LEASE_SECONDS, 30).")
    @click.option("--poll-interval", type=POSITIVE_SECONDS, default=1.0, show_default=True,
                  help="Seconds between polls when no notification arrives.")
    @database_option
    @click.option("--server-url", "worker_server_url", default=None, metavar="URL",
                  help="Work through this server's API instead of PostgreSQL: the worker needs no database "
                       "credentials, only an API token.")
    @click.option("--token", default=None, metavar="TOKEN",
                  help="Bearer token for --server-url (default: NOETL_API_TOKEN).")
    @click.option("--log-level", type=LOG_LEVEL, default="info", show_default=True, help="Log level.")
    @log_format_option
    @handle_errors
    def worker_start(concurrency: int | None, name: str, lease_seconds: float | None, poll_interval: float,
                     database_url: str | None, worker_server_url: str | None, token: str | None,
                     log_level: str, log_format: str) -> None:
        """Run a worker until SIGTERM (finishes or hands back in-flight work)."""
        from noetl.runtime.worker import WorkerOptions, run_worker
        from noetl.settings import load_settings
        from noetl.tools.environment import protect_process_environment

        protect_process_environment()  # its settings: out of reach of the tools it runs
        settings = load_settings()
        options = WorkerOptions(name=name, concurrency=concurrency or settings.worker_concurrency,
                                lease_seconds=lease_seconds or settings.lease_seconds, poll_interval=poll_interval,
                                max_attempts=settings.max_attempts)
        options.reap_interval = _reap_interval(options.lease_seconds)
        if options.concurrency < 1:
            raise InputError("--concurrency must be at least 1")
        _logging(log_level, log_format)
        if worker_server_url:
            if database_url:
                raise InputError("use either --server-url (through the API) or --database-url, not both")
            if not worker_server_url.startswith(("http://", "https://")):
                raise InputError(f"--server-url must be an http(s) URL, got {worker_server_url!r}")
            from noetl.runtime.remote_worker import run_remote_worker

            run_sync(run_remote_worker(worker_server_url, token or settings.api_token, options))
            return
        run_sync(run_worker(_database_url(database_url), options))

    @cli.group()
    def db() -> None:
        """The NoETL database (PostgreSQL)."""

    @db.command("init")
    @database_option
    @handle_errors
    def db_init(database_url: str | None) -> None:
        """Create schema `noetl` and apply pending migrations (safe to run again)."""
        applied, reader = run_sync(_migrate(_database_url(database_url)))
        if reader is None:
            click.echo("warning: this role cannot create roles, so the SQL endpoint's read-only role was not "
                       "created; run `noetl db init` once as a role with CREATEROLE", err=True)
        click.echo(json.dumps({"applied": applied, "status": "up to date" if not applied else "migrated",
                               "sql_reader_role": reader}))

    @cli.command("query")
    @click.argument("sql")
    @click.option("--schema", default=None, help="Schema searched first (search_path).")
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
                  help="Print an aligned table or JSON rows.")
    @click.option("--write", is_flag=True,
                  help="Allow a statement that changes data: the local store, a direct connection, or a server "
                       "with NOETL_SQL_API_WRITE=true.")
    @database_option
    @click.pass_obj
    @handle_errors
    def query(obj: Any, sql: str, schema: str | None, fmt: str, write: bool, database_url: str | None) -> None:
        """Query the NoETL database (read-only by default), directly or through the server's SQL endpoint."""
        from noetl.settings import load_settings

        if not sql.strip():
            raise InputError("no SQL statement given (noetl query \"SELECT ...\")")

        url = database_url or load_settings().database_url
        if url:
            result = run_sync(_query_direct(_database_url(url), sql, schema, write))
        elif obj.server_url:
            from noetl.cli.remote import post_json

            try:
                result = post_json(obj.server_url, "/api/postgres/execute", {"query": sql, "schema": schema,
                                                                              "write": write})
            except ForbiddenError as exc:  # the endpoint is off, or this token's role may not use it
                why = ("--server-url/--host/--port was given" if obj.server_from_options
                       else "NOETL_SERVER_URL is set")
                raise ForbiddenError(f"{exc} (the query went to the server at {obj.server_url} because {why}; "
                                     "without it, noetl query reads the local store)") from None
        else:
            from noetl.cli.local_query import query_local

            result = query_local(load_settings().sqlite_path, sql, write=write)
        _print_result(result, fmt)


async def _migrate(url: str) -> tuple[list[int], str | None]:
    from noetl.store.postgres import PostgresStore
    from noetl.store.postgres.sqlreader import try_ensure_reader

    store = PostgresStore(url, migrate=False)
    await store.open()
    try:
        applied = await store.migrate()
        reader = await try_ensure_reader(store)
        return applied, reader.role if reader else None
    finally:
        await store.close()


async def _migrate_or_fail(url: str) -> None:
    from noetl.store.postgres import PostgresStore

    store = PostgresStore(url, min_size=1, max_size=1)
    await store.open()
    await store.close()


async def _query_direct(url: str, sql: str, schema: str | None, write: bool) -> dict[str, Any]:
    from noetl.server.sqlapi import run_statement

    return await run_statement(url, sql, schema=schema, write=write)


def _print_result(result: dict[str, Any], fmt: str) -> None:
    columns, rows = result.get("columns") or [], result.get("rows") or []
    if result.get("truncated"):
        from noetl.limits import MAX_QUERY_BYTES, MAX_QUERY_ROWS

        click.echo(f"note: only the first {len(rows):,} row(s) of the answer are shown (an answer stops at "
                   f"{MAX_QUERY_ROWS:,} rows or {MAX_QUERY_BYTES // 2**20} MiB); narrow the query (WHERE, LIMIT) "
                   "to see the rest", err=True)
    if fmt == "json":
        click.echo(json.dumps([dict(zip(columns, row, strict=False)) for row in rows], default=str))
        return
    if not columns:
        click.echo(f"ok ({result.get('rowcount', 0)} row(s))")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*["" if value is None else (json.dumps(value) if isinstance(value, dict | list) else str(value))
                        for value in row])
    Console().print(table)


install(cli)
