"""Running tools in tests the way the runner does: a ToolCall with services backed by a real
credential store (MemoryStore + the encryption of :mod:`noetl.credentials`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from noetl import credentials
from noetl.store.memory import MemoryStore
from noetl.tools.base import ToolCall


class CredentialServices:
    """The slice of ToolServices the data tools use: decrypted credentials from a store."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def get_credential(self, name: str) -> dict[str, Any]:
        return await credentials.get_credential(self.store, name)

    async def run_child_playbook(self, **_: Any) -> Any:
        raise NotImplementedError("not used by the data tools")


async def open_store(*docs: dict[str, Any]) -> MemoryStore:
    """A MemoryStore holding the given credential documents (encrypted like the real thing)."""
    store = MemoryStore()
    await store.open()
    for doc in docs:
        await credentials.register_credential(store, doc)
    return store


def make_call(
    services: Any = None, *, execution_id: str = "exec-test", playbook_dir: Path | None = None
) -> ToolCall:
    return ToolCall(
        execution_id=execution_id,
        step="step",
        task="step",
        context={},
        services=services,
        playbook_dir=playbook_dir,
    )


def run_async(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` in a fresh loop and close every pooled client/pool of that loop afterwards."""

    async def wrapper() -> Any:
        from noetl.tools.http import close_http_clients
        from noetl.tools.postgres import close_postgres_pools

        try:
            return await main()
        finally:
            await close_http_clients()
            await close_postgres_pools()

    return asyncio.run(wrapper())
