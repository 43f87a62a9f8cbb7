"""Running one frame of a cursor loop: claim rows, run the step's tasks on them, report the frame.

A frame command (``Command.cursor`` set, see :mod:`noetl.engine.frames`) runs on one worker, like
any command: the claim is a postgres task rendered with the frame's settings among its names
(``__frame_max_rows``, ``__frame_lease_seconds``, ...), and each iteration is the step's pipeline,
run through the same :class:`Runner` as every other command. With ``process: row`` every row is
one iteration (``row_concurrency`` of them at once); with ``process: frame`` the list of rows is
one. The frame is reported as one outcome: ``{frame, rows, items, results, failed}``.

While a frame runs, its lease is renewed every ``heartbeat_seconds`` by the runtime's services
(``keep_frame_alive``) when they hold leases at all (the distributed workers do; the local runtime
has none to keep).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from noetl.dsl.render import render_data
from noetl.engine.commands import Command
from noetl.engine.frames import iteration_local
from noetl.errors import ErrorInfo, NoetlError
from noetl.runtime.runner import Outcome, Runner
from noetl.tools.base import ToolCall, get_tool
from noetl.waiting import within


async def run_command(runner: Runner, command: Command) -> Outcome:
    """Run a command: a frame of a cursor loop, or the step's tasks once."""
    if command.cursor is None:
        return await runner.run(command)
    return await _Frame(runner, command).run()


class _Frame:
    def __init__(self, runner: Runner, command: Command) -> None:
        assert command.cursor is not None
        self.runner = runner
        self.command = command
        self.cursor = command.cursor
        self.spec: dict[str, Any] = dict(self.cursor.get("frame") or {})
        self.index = int(self.cursor.get("index") or 0)
        self.deadline: float | None = None

    async def run(self) -> Outcome:
        started = time.perf_counter()
        async with _kept_alive(self.runner.services, self.spec):
            claim = await self._claim()
            if not claim.ok:
                claim.duration = time.perf_counter() - started
                return claim
            rows = list((claim.result or {}).get("rows") or [])
            outcomes = await self._iterations(rows)
        outcome = _combine(self.index, rows, outcomes, claim)
        outcome.duration = time.perf_counter() - started
        return outcome

    async def _claim(self) -> Outcome:
        """Run the claim: the postgres tool on the cursor's connection, its SQL rendered with the
        frame's settings among the names. Its rows are the frame, whatever their size (they are not
        a step result, so nothing stores them by reference)."""
        source = dict(self.cursor.get("source") or {})
        sql = source.pop("claim", "")
        source.pop("kind", None)
        if "credential" in source and "auth" not in source:
            source["auth"] = source.pop("credential")  # the older alias, as on the postgres tool
        names = {f"__frame_{key}": value for key, value in self.spec.items()}
        names["__frame_max_rows"] = int(self.spec.get("max_rows") or 1)
        names["__frame_index"] = self.index
        command = self.command
        context = _child(command.context, names)
        call = ToolCall(execution_id=command.execution_id, step=command.step, task=f"{command.step}.claim",
                        context=context, services=self.runner.services, playbook_dir=self.runner.playbook_dir)
        try:
            config = render_data({**source, "command": sql}, context, where=f"step {command.step!r} loop.cursor")
            result = await get_tool("postgres")(config, call)
        except NoetlError as exc:
            return Outcome(ok=False, error=ErrorInfo.from_exception(exc).to_dict(), logs=call.logs,
                           secrets=call.secrets)
        return Outcome(ok=True, result=result, logs=call.logs, secrets=call.secrets)

    async def _iterations(self, rows: list[Any]) -> list[Outcome]:
        if not rows:
            return []
        max_bytes = self.spec.get("max_bytes")
        if max_bytes:
            size = len(json.dumps(rows, default=str).encode("utf-8"))
            if size > int(max_bytes):
                error = ErrorInfo("frame_too_large", f"frame {self.index}: the claim returned {size} bytes of rows, "
                                  f"more than frame.max_bytes ({max_bytes}); its {len(rows)} row(s) were not "
                                  "processed", retryable=False).to_dict()
                count = 1 if self.spec.get("process") == "frame" else len(rows)
                return [Outcome(ok=False, error=error) for _ in range(count)]
        if self.spec.get("max_seconds"):
            self.deadline = asyncio.get_running_loop().time() + float(self.spec["max_seconds"])
        if self.spec.get("process") == "frame":
            return [await self._bounded(0, rows, 1)]
        slots = asyncio.Semaphore(int(self.spec.get("row_concurrency") or 1))

        async def one(index: int, row: Any) -> Outcome:
            async with slots:
                return await self._bounded(index, row, len(rows))

        return list(await asyncio.gather(*(one(i, row) for i, row in enumerate(rows))))

    async def _bounded(self, index: int, item: Any, count: int) -> Outcome:
        """One iteration within what is left of the frame's ``max_seconds``."""
        if self.deadline is None:
            return await self._iteration(index, item, count)
        left = self.deadline - asyncio.get_running_loop().time()
        try:
            if left <= 0:
                raise TimeoutError
            return await within(self._iteration(index, item, count), left)
        except TimeoutError:
            return Outcome(ok=False, error=ErrorInfo(
                "timeout", f"frame {self.index}: iteration {index} did not finish within frame.max_seconds "
                           f"({self.spec['max_seconds']:g} s)", retryable=True).to_dict())

    async def _iteration(self, index: int, item: Any, count: int) -> Outcome:
        command = self.command
        local = iteration_local(str(self.cursor.get("iterator") or "item"), item, index, self.index, count)
        context = _child(command.context, local)
        try:
            rendered = render_data(self.cursor.get("input") or {}, context, where=f"step {command.step!r} input")
        except NoetlError as exc:
            return Outcome(ok=False, error=ErrorInfo("template", str(exc), False).to_dict())
        args = {**rendered, **command.arc_input}
        local["input"] = args
        iteration = Command(
            command_id=f"{command.command_id}/{index}", execution_id=command.execution_id, step=command.step,
            tasks=command.tasks, context=_child(command.context, local), local=local, args=args,
            arc_input=command.arc_input, loop_index=index, entry=command.entry, timeout=command.timeout,
            attempt=command.attempt)
        return await self.runner.run(iteration)


def _combine(frame: int, rows: list[Any], outcomes: list[Outcome], claim: Outcome) -> Outcome:
    """The frame's report: every iteration's result (or error) in claim order, and the names of the
    failed ones; the iterations' `ctx` writes, logs and secrets together."""
    combined = Outcome(ok=True, result={
        "frame": frame, "rows": len(rows), "items": rows,
        "results": [o.result if o.ok else o.error for o in outcomes],
        "failed": [i for i, o in enumerate(outcomes) if not o.ok],
    }, logs=list(claim.logs), secrets=set(claim.secrets), attempts=claim.attempts)
    for outcome in outcomes:
        combined.ctx_set.update(outcome.ctx_set)
        combined.logs.extend(outcome.logs)
        combined.secrets |= outcome.secrets
        combined.logs_streamed = combined.logs_streamed or outcome.logs_streamed
        combined.attempts = max(combined.attempts, outcome.attempts)
    return combined


def _child(context: Any, top: dict[str, Any]) -> Any:
    return context.child(top) if hasattr(context, "child") else {**dict(context), **top}


def _kept_alive(services: Any, spec: dict[str, Any]) -> AbstractAsyncContextManager[Any]:
    """Renew the frame's lease while it runs, where the runtime holds leases."""
    keeper = getattr(services, "keep_frame_alive", None)
    lease, beat = spec.get("lease_seconds"), spec.get("heartbeat_seconds")
    if keeper is None or not (lease or beat):
        return contextlib.nullcontext()
    lease = float(lease) if lease else None
    interval = float(beat) if beat else float(lease or 30) / 3
    return keeper(lease_seconds=lease, heartbeat_seconds=interval)  # type: ignore[no-any-return]
