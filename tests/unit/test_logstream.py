"""Streamed logs (noetl.runtime.logstream) with a real in-memory store: batching, order, redaction,
the per-call cap, and python output reaching the store while the code still runs (thread and process
isolation) and shell output as it is read."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from noetl.runtime.logstream import FLUSH_LINES, LogBatcher, store_sink
from noetl.secrets import Redactor
from noetl.store.base import LogRecord
from noetl.store.memory import MemoryStore
from noetl.tools.base import ToolCall
from noetl.tools.python import run_python
from noetl.tools.shell import run_shell


class CountingSink:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.batches: list[int] = []

    async def __call__(self, records: list[LogRecord]) -> None:
        self.batches.append(len(records))
        await self.store.append_logs(records)


def test_lines_from_another_thread_are_written_in_batches_in_order() -> None:
    async def scenario() -> tuple[CountingSink, list[LogRecord]]:
        sink = CountingSink()
        await sink.store.open()
        batcher = LogBatcher(sink, max_bytes=1_000_000)
        log = batcher.open_call("e1", "chatty", 2, redactor=None, secrets=set())
        writer = threading.Thread(target=lambda: [log.write("stdout", f"line {i}\n") for i in range(250)])
        writer.start()
        writer.join()
        log.write("stderr", "no newline at the end")
        await log.close()
        await batcher.close()
        return sink, await sink.store.list_logs("e1")

    sink, stored = asyncio.run(scenario())
    assert [r.line for r in stored] == [f"line {i}" for i in range(250)] + ["no newline at the end"]
    assert {(r.step, r.loop_index) for r in stored} == {("chatty", 2)} and stored[-1].stream == "stderr"
    assert sum(sink.batches) == 251 and len(sink.batches) <= 251 // FLUSH_LINES + 2  # not a write per line


def test_lines_are_redacted_and_capped_with_a_marker() -> None:
    async def scenario() -> list[str]:
        store = MemoryStore()
        await store.open()
        batcher = LogBatcher(store_sink(store), max_bytes=50)
        secrets: set[str] = set()
        log = batcher.open_call("e1", "s", None, redactor=Redactor(["hunter2-secret"]), secrets=secrets)
        secrets.add("resolved-by-the-call")  # a secret the call itself resolved, learnt before the flush
        log.write("stdout", "pw hunter2-secret\nkey resolved-by-the-call\n")
        log.write("stdout", "this line is past the cap\nand so is this\n")
        await log.close()
        return [r.line for r in await store.list_logs("e1")]

    dropped = len("this line is past the cap\n") + len("and so is this\n")
    assert asyncio.run(scenario()) == ["pw ***", "key ***", f"[truncated: {dropped} bytes dropped]"]


def test_a_secret_the_execution_learns_after_the_call_opened_is_masked() -> None:
    async def scenario() -> list[str]:
        store = MemoryStore()
        await store.open()
        batcher = LogBatcher(store_sink(store), max_bytes=1_000_000)
        execution_redactor = Redactor()  # knows no secret yet when the call's log opens
        log = batcher.open_call("e1", "s", None, redactor=execution_redactor, secrets=set())
        execution_redactor.add("learnt-by-another-step")  # e.g. a parallel iteration resolved it
        log.write("stdout", "token learnt-by-another-step\n")
        await log.close()
        return [r.line for r in await store.list_logs("e1")]

    assert asyncio.run(scenario()) == ["token ***"]


def _release_after_line(code: str, config: dict[str, Any], tmp_path: Path, tool: Any = run_python) -> list[str]:
    """Run a step that prints, then waits for a release file; return the lines stored before release."""
    release = tmp_path / "release"

    async def scenario() -> list[str]:
        store = MemoryStore()
        await store.open()
        batcher = LogBatcher(store_sink(store))
        log = batcher.open_call("e1", "slow", None, redactor=None, secrets=set())
        call = ToolCall(execution_id="e1", step="slow", task="slow", context={}, args={"release": str(release)},
                        output=log)
        running = asyncio.create_task(tool({**config, "code": code} if "code" not in config else config, call))
        seen: list[str] = []
        for _ in range(600):  # up to 60 s on a loaded machine
            seen = [r.line for r in await store.list_logs("e1")]
            if seen or running.done():
                break
            await asyncio.sleep(0.1)
        release.touch()
        await running
        await log.close()
        assert not running.exception()
        return seen

    return asyncio.run(scenario())


WAITING_CODE = """import os, time
print("tick 1")
while not os.path.exists(release):
    time.sleep(0.02)
result = 1"""


def test_python_output_is_stored_while_the_code_runs_on_a_thread(tmp_path: Path) -> None:
    assert _release_after_line(WAITING_CODE, {}, tmp_path) == ["tick 1"]


def test_python_output_is_stored_while_the_code_runs_in_a_worker_process(tmp_path: Path) -> None:
    assert _release_after_line(WAITING_CODE, {"isolation": "process"}, tmp_path) == ["tick 1"]


def test_shell_output_is_stored_as_it_is_read(tmp_path: Path) -> None:
    release = tmp_path / "release"
    command = f"echo started; while [ ! -e {release} ]; do sleep 0.05; done"
    assert _release_after_line("", {"command": command}, tmp_path, tool=run_shell) == ["started"]


def test_a_call_whose_lines_could_not_be_stored_says_so() -> None:
    async def refuse(records: list[LogRecord]) -> None:
        raise OSError("the store is away")

    async def scenario() -> tuple[int, bool]:
        batcher = LogBatcher(refuse)
        log = batcher.open_call("e1", "s", None, redactor=None, secrets=set())
        log.write("stdout", "kept only in the event\n")
        await log.close()  # the step goes on: nothing raises
        return log.lines, log.lost

    assert asyncio.run(scenario()) == (1, True)


def test_the_local_runtime_stops_its_flush_task_when_its_runs_end() -> None:
    """A long-lived process (noetl ui, noetl scheduler) runs many executions: no flush task may be
    left behind by each, and every line is stored when the run returns."""
    from noetl.dsl.parse import load_playbook_text
    from noetl.runtime.local import LocalRuntime
    from noetl.runtime.request import RunRequest

    text = """
metadata: {name: printing}
workflow:
  - step: start
    tool: {kind: python, code: "print('hello from the step')\\nresult = 1"}
"""

    async def scenario() -> tuple[list[str], list[str]]:
        store = MemoryStore()
        await store.open()
        runtime = LocalRuntime(store)
        ids = []
        for _ in range(3):
            playbook = load_playbook_text(text).require()
            doc = await runtime.run(RunRequest(playbook=playbook, playbook_text=text, payload={}))
            assert doc["status"] == "completed"
            ids.append(doc["execution_id"])
        left = [t.get_name() for t in asyncio.all_tasks() if t.get_name() == "noetl-log-flush"]
        lines = [r.line for execution_id in ids for r in await store.list_logs(execution_id)]
        return left, lines

    left, lines = asyncio.run(scenario())
    assert left == []
    assert lines == ["hello from the step"] * 3


def test_close_returns_when_a_full_batch_wakes_the_flush_task_as_it_is_cancelled() -> None:
    """The process of `noetl run` hung after a chatty step: the flush task's wait for a full batch
    woke in the same loop iteration as close() cancelled it, and the cancel was lost."""
    stored: list[str] = []

    async def scenario() -> None:
        store = MemoryStore()
        await store.open()
        batcher = LogBatcher(store_sink(store), max_bytes=1_000_000)
        log = batcher.open_call("e1", "chatty", None, redactor=None, secrets=set())
        log.write("stdout", "first\n")  # wakes the flush task, which then waits for a full batch
        for _ in range(3):
            await asyncio.sleep(0)
        log.write("stdout", "".join(f"line {i}\n" for i in range(FLUSH_LINES)))  # the batch is full
        await batcher.close()
        stored.extend(r.line for r in await store.list_logs("e1"))

    # On a thread of its own: should close() hang, the test fails instead of hanging too.
    runner = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    runner.start()
    runner.join(10)
    assert not runner.is_alive(), "LogBatcher.close() did not return"
    assert stored == ["first"] + [f"line {i}" for i in range(FLUSH_LINES)]


def test_close_cancelled_from_outside_is_cancelled() -> None:
    """A caller that gives up on close() (a timeout, a cancelled run) is not kept waiting."""

    async def scenario() -> bool:
        store = MemoryStore()
        await store.open()
        batcher = LogBatcher(store_sink(store), max_bytes=1_000_000)
        log = batcher.open_call("e1", "s", None, redactor=None, secrets=set())
        log.write("stdout", "a line\n")
        closing = asyncio.create_task(batcher.close())
        await asyncio.sleep(0)
        closing.cancel()
        try:
            await closing
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(scenario())
