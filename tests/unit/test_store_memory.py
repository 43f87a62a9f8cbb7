"""MemoryStore, the shipped fake, held to the same conformance suite as the real backends."""

from __future__ import annotations

import sys
from pathlib import Path

# The suite lives beside the integration tests, which later backends (PostgreSQL) share.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from store_conformance import Clock, StoreConformance  # noqa: E402

from noetl.store.base import Store  # noqa: E402
from noetl.store.memory import MemoryStore  # noqa: E402


class TestMemoryStore(StoreConformance):
    persistent = False

    async def make_store(self, *, clock: Clock | None = None) -> Store:
        store = MemoryStore(clock=clock) if clock else MemoryStore()
        await store.open()
        return store
