"""Microseconds per ``append_events`` call of 3 events (one step) on a file SQLite store.

python bench/store_append.py [STEPS]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from noetl.engine.events import CALL_DONE, STEP_ENTER, STEP_EXIT, Event
from noetl.store.base import ExecutionRecord
from noetl.store.sqlite import SqliteStore

NOW = "2024-01-01T00:00:00+00:00"


def step_events(execution_id: str, step: int) -> list[Event]:
    name = f"step_{step}"
    return [
        Event(execution_id, STEP_ENTER, name, "running", meta={"command_id": f"c{step}"}, created_at=NOW),
        Event(
            execution_id,
            CALL_DONE,
            name,
            "completed",
            result={"value": step, "rows": [1, 2, 3]},
            meta={"command_id": f"c{step}", "attempt": 1, "duration": 0.0001},
            created_at=NOW,
        ),
        Event(execution_id, STEP_EXIT, name, "completed", result={"value": step}, created_at=NOW),
    ]


async def measure(path: Path, steps: int) -> float:
    store = SqliteStore(path)
    await store.open()
    try:
        await store.create_execution(ExecutionRecord("e1", "bench", started_at=NOW), [])
        batches = [step_events("e1", step) for step in range(steps)]
        started = time.perf_counter()
        for batch in batches:
            await store.append_events("e1", batch)
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    return elapsed / steps * 1e6


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as folder:
        per_call = asyncio.run(measure(Path(folder) / "noetl.db", steps))
    print(
        f"append_events (3 events, file DB, WAL, synchronous=NORMAL): {per_call:.1f} µs/call over {steps} calls"
    )


if __name__ == "__main__":
    main()
