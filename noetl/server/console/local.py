"""``noetl ui``: the console over the local store, so a laptop user sees their ``noetl run`` executions.

Executions started from this console run inside the ``noetl ui`` process, as ``noetl run`` would
run them; cancelling works for any local execution (the running process watches its row).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request

from noetl.server.console.auth import registry_lookup
from noetl.server.console.routes import ConsoleConfig, install_console
from noetl.server.console.source import LocalSource
from noetl.server.tokens import TokenRegistry


def create_local_app(store_path: Path, *, tokens: TokenRegistry | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from noetl.store.sqlite import SqliteStore
        from noetl.tools.base import shutdown_tools

        store = SqliteStore(store_path)
        await store.open()
        app.state.console_source = LocalSource(store)
        try:
            yield
        finally:
            await app.state.console_source.close()
            await shutdown_tools()
            await store.close()

    app = FastAPI(title="NoETL console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    lookup = registry_lookup(tokens or TokenRegistry())

    def source(request: Request) -> LocalSource:
        found: LocalSource = request.app.state.console_source
        return found

    install_console(app, ConsoleConfig(source=source, roles=lambda _: lookup, where=f"local store {store_path}",
                                       server=False))
    return app
