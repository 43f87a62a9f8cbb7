"""``create_app``: the FastAPI application of ``noetl server start``.

The lifespan opens the PostgreSQL store (applying migrations) and runs a reaper, so expired leases
are recovered even when no worker is alive to do it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, FastAPI
from fastapi_offline import FastAPIOffline

from noetl.results.refs import use_loader
from noetl.results.storage import storage_for
from noetl.runtime.distributed import DecisionCore
from noetl.runtime.reaper import Reaper
from noetl.runtime.stopping import finish_within
from noetl.scheduling.distributed import run_server_scheduler
from noetl.scheduling.triggered import run_trigger_poller
from noetl.server.auth import authorize, public_routes
from noetl.server.console.server import install_server_console
from noetl.server.errors import install_error_handlers
from noetl.server.guard import RequestGuard
from noetl.server.requestlog import install_request_log_context
from noetl.server.routes import (
    catalog,
    executions,
    hooks,
    recovery,
    results,
    schedules,
    system,
    triggers,
    workers,
)
from noetl.server.state import ServerConfig, ServerState
from noetl.server.warmup import warm_up_routes
from noetl.store.postgres import PostgresStore
from noetl.store.postgres.sqlreader import try_ensure_reader

log = logging.getLogger("noetl.server")


def create_app(config: ServerConfig) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = PostgresStore(config.database_url, max_size=config.pool_size)
        await store.open()
        if config.sql_api_enabled and await try_ensure_reader(store) is None:
            log.warning("SQL endpoint: this role cannot create the reader role; run `noetl db init` as a role "
                        "with CREATEROLE (read-only queries run as the server's role until then)")
        core = DecisionCore(store, owner=f"server-{socket.gethostname()}-{os.getpid()}")
        result_storage = storage_for(store, shared=True)
        use_loader(result_storage.read, result_storage.read_items, result_storage.read_piece)  # decisions on remote workers' reports read `_ref`s
        app.state.noetl = ServerState(config=config, store=store, core=core)
        await warm_up_routes(app.router)  # before the first client: FastAPI builds route state on first use
        stop = asyncio.Event()
        reaper = asyncio.create_task(Reaper(core, max_attempts=config.max_attempts)
                                     .run(stop, interval=config.reap_interval), name="noetl-reaper")
        scheduler = asyncio.create_task(run_server_scheduler(core, stop), name="noetl-scheduler")
        trigger_poller = asyncio.create_task(run_trigger_poller(core, stop), name="noetl-trigger-poller")
        try:
            yield
        finally:
            stop.set()
            await finish_within({reaper, scheduler, trigger_poller})  # bounded even with PostgreSQL down
            for task in (reaper, scheduler, trigger_poller):
                if not task.cancelled() and task.exception() is not None:
                    log.error("%s ended with %r", task.get_name(), task.exception())
            await store.close()

    # Swagger UI and ReDoc from the fastapi-offline package's own copies: /docs works offline.
    app = FastAPIOffline(title="NoETL", version=_version(), lifespan=lifespan,
                         description="Register playbooks, run them on workers, inspect executions.")
    app.state.noetl_tokens = config.tokens
    api_modules = (system, catalog, executions, hooks, recovery, results, schedules, triggers, workers)
    app.add_middleware(RequestGuard, tokens=config.tokens, max_body_bytes=config.max_body_bytes,
                       body_seconds=config.request_timeout_seconds,
                       public=public_routes("/api", [module.router for module in api_modules]))
    install_error_handlers(app)
    app.include_router(system.public)
    api = APIRouter(prefix="/api", dependencies=[Depends(authorize)])
    for module in api_modules:
        api.include_router(module.router)
    app.include_router(api)
    install_server_console(app)
    install_request_log_context(app)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("noetl")
    except PackageNotFoundError:
        return "0"


def main(argv: list[str] | None = None) -> None:
    """``python -m noetl.server.app [options]`` (seed 002): ``noetl server start`` with the same
    options, on port 8000 unless ``--port`` says otherwise (the port that guide uses)."""
    import sys

    from noetl.cli.main import cli

    args = list(sys.argv[1:] if argv is None else argv)
    if not any(arg == "--port" or arg.startswith("--port=") for arg in args):
        args += ["--port", "8000"]
    cli.main(args=["server", "start", *args], prog_name="noetl")


if __name__ == "__main__":
    main()
