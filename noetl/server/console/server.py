"""The console of ``noetl server start``: a view of the deployment's PostgreSQL store, with the
API's token guarding it."""

from __future__ import annotations

from fastapi import FastAPI, Request

from noetl.server.console.auth import RoleLookup, registry_lookup
from noetl.server.console.routes import ConsoleConfig, install_console
from noetl.server.console.source import ServerSource
from noetl.server.state import server_state


def install_server_console(app: FastAPI) -> None:
    def source(request: Request) -> ServerSource:
        return ServerSource(server_state(request))

    def roles(request: Request) -> RoleLookup | None:
        return registry_lookup(server_state(request).config.tokens)

    install_console(app, ConsoleConfig(source=source, roles=roles, where="server", server=True))
