"""What every route needs: the store, the decision core and the server's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from noetl.runtime.distributed import DecisionCore
from noetl.store.postgres import PostgresStore


@dataclass(slots=True)
class ServerConfig:
    database_url: str
    api_token: str | None = None
    sql_api_enabled: bool = False
    sql_api_writable: bool = False
    max_attempts: int = 3
    reap_interval: float = 5.0
    pool_size: int = 10


@dataclass(slots=True)
class ServerState:
    config: ServerConfig
    store: PostgresStore
    core: DecisionCore


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.noetl
    return state


# The route parameter type: `state: State` injects the server state (FastAPI dependency).
State = Annotated[ServerState, Depends(server_state)]
