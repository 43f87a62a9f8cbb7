"""A run cancelled from outside (Ctrl-C, a timeout around it) stops even when the execution's own
cancel lands in the same moment, while the run awaits its one command itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
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


ENDLESS = """
metadata: {name: endless}
workflow:
  - step: ping
    tool: {kind: python, code: "result = 1"}
    next: [{step: pong}]
  - step: pong
    tool: {kind: noop}
    next: [{step: ping}]
"""


def test_a_cancel_from_another_process_is_recorded_once_while_the_run_stores_decisions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Until the run's watcher sees the cancel (0.25 s), the run goes on storing decisions after it.
    from noetl.api import open_store, run_async
    from noetl.engine.status import status_document
    from noetl.runtime.cancel import cancel_local
    from noetl.waiting import within

    monkeypatch.setenv("NOETL_HOME", str(tmp_path))

    async def scenario() -> tuple[dict[str, Any], list[Any]]:
        ours, theirs = await open_store(), await open_store()  # `noetl cancel` opens its own
        try:
            execution_id = new_execution_id()
            run = asyncio.create_task(run_async(ENDLESS, store=ours, execution_id=execution_id))
            for _ in range(3000):  # until some steps are stored, 30 s at most
                await asyncio.sleep(0.01)
                if len(await theirs.list_events(execution_id)) > 20:
                    break
            await cancel_local(theirs, execution_id)
            doc = await within(run, 30)
            return doc, await theirs.list_events(execution_id)
        finally:
            await ours.close()
            await theirs.close()

    doc, events = asyncio.run(scenario())
    assert doc["status"] == "cancelled"
    assert [e.event_type for e in events].count("execution.cancelled") == 1
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    assert status_document(events)["status"] == "cancelled"
