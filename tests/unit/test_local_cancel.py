"""A run cancelled from outside (Ctrl-C, a timeout around it) stops even when the execution's own
cancel lands in the same moment, while the run awaits its one command itself."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from noetl.dsl.parse import load_playbook_text
from noetl.ids import new_execution_id
from noetl.runtime import local
from noetl.runtime.local import LocalRuntime
from noetl.runtime.request import RunRequest
from noetl.store.memory import MemoryStore

SLOW_STEP = """
metadata: {name: slow}
workflow:
  - step: start
    tool: {kind: python, code: "import time\\ntime.sleep(2)\\nresult = 1"}
"""


def test_a_cancel_of_the_run_arriving_with_the_executions_cancel_stops_the_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    outer: list[asyncio.Task[Any]] = []
    interrupt = local._Execution._interrupt

    def interrupt_and_cancel_the_run(self: Any) -> None:
        interrupt(self)
        outer[0].cancel()  # the run's caller gives up in the same moment

    monkeypatch.setattr(local._Execution, "_interrupt", interrupt_and_cancel_the_run)

    async def scenario() -> None:
        store = MemoryStore()
        await store.open()
        runtime = LocalRuntime(store)
        execution_id = new_execution_id()
        playbook = load_playbook_text(SLOW_STEP).require()
        task = asyncio.create_task(runtime.run(RunRequest(
            playbook=playbook, playbook_text=SLOW_STEP, payload={}, execution_id=execution_id)))
        outer.append(task)
        await asyncio.sleep(0.3)  # the step is running
        runtime.cancel(execution_id)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
