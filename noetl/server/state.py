"""What every route needs: the store, the decision core and the server's configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from noetl.limits import DEFAULT_MAX_BODY_BYTES
from noetl.runtime.distributed import DecisionCore
from noetl.server.tokens import TokenRegistry
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
    # Tokens and roles; ``api_token`` alone is one admin token (merged in at construction).
    tokens: TokenRegistry = field(default_factory=TokenRegistry)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_timeout_seconds: float = 10.0  # a request's head, and each part of its body (slow clients)

    def __post_init__(self) -> None:
        if self.api_token and self.tokens.role_of(self.api_token) is None:
            self.tokens = TokenRegistry(self.tokens.entries + TokenRegistry.build(api_token=self.api_token).entries)


@dataclass(slots=True)
class ServerState:
    config: ServerConfig
    store: PostgresStore
    core: DecisionCore


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.noetl
    return state


async def _server_state_dependency(request: Request) -> ServerState:
    """``server_state`` as a coroutine: FastAPI runs a plain function dependency on its thread pool,
    a hand-off to a thread and back to the event loop on every request for an attribute look-up."""
    return server_state(request)


# The route parameter type: `state: State` injects the server state (FastAPI dependency).
State = Annotated[ServerState, Depends(_server_state_dependency)]
