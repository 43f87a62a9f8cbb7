"""Logs streamed while a call runs (SPEC section 17): ``print`` output of python steps and
stdout/stderr of shell steps reach the store as they come, not only with the call's event.

One :class:`LogBatcher` per runtime process (the local runtime, a database worker, a worker that
reports through the server) gathers the lines of every running call and hands them to its sink
in batches: ``FLUSH_SECONDS`` after the first pending line, or at once when ``FLUSH_LINES`` are
waiting, so a chatty step does not cost a write per line. Each call writes through its own
:class:`CallLog` (any thread may write: python code runs on worker threads), which splits the
output into lines, keeps at most ``log_max_bytes`` of them (then one ``[truncated: N bytes
dropped]`` line) and passes each line through the execution's redactor when it is flushed.

When a call ends, its remaining lines are flushed before its event is reported, so a call's lines
are stored before the event that says it ended; that event then carries ``meta.logs_streamed``,
and readers take the call's lines from the store rather than from the event's own copy. When a
batch could not be stored, the event does not say so, and readers fall back to that copy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from noetl.clock import Clock, utc_now
from noetl.store.base import LogRecord
from noetl.waiting import cancel_and_wait, event_set_within

log = logging.getLogger("noetl.logs")

FLUSH_SECONDS = 0.5
FLUSH_LINES = 100
MAX_LINE_CHARS = 64 * 1024  # output without a newline is cut into lines of this size
STREAMS = ("stdout", "stderr")

LogSink = Callable[[list[LogRecord]], Awaitable[None]]


class CallLog:
    """The output of one call (one run of a step, or one loop iteration), line by line."""

    def __init__(self, batcher: LogBatcher, execution_id: str, step: str, loop_index: int | None, *,
                 redactor: Any, secrets: set[str], max_bytes: int) -> None:
        self.batcher = batcher
        self.execution_id, self.step, self.loop_index = execution_id, step, loop_index
        self.redactor, self.secrets = redactor, secrets
        self.max_bytes = max_bytes
        self.kept_bytes = 0
        self.dropped_bytes = 0
        self.lines = 0  # lines handed to the batcher
        self.lost = False  # a batch holding some of its lines could not be stored
        self._partial = {stream: "" for stream in STREAMS}
        self._lock = threading.Lock()
        self._closed = False

    def write(self, stream: str, text: str) -> None:
        """Output of the call (from any thread); complete lines are queued for the store."""
        if not text:
            return
        stream = stream if stream in STREAMS else "stdout"
        with self._lock:
            if self._closed:
                return
            buffered = self._partial[stream] + text
            *lines, rest = buffered.split("\n")
            while len(rest) > MAX_LINE_CHARS:
                lines.append(rest[:MAX_LINE_CHARS])
                rest = rest[MAX_LINE_CHARS:]
            self._partial[stream] = rest
            kept = [line.removesuffix("\r") for line in lines if self._keep(line)]
        if kept:
            self._queue(stream, kept)

    def finish(self) -> None:
        """The call ended: queue what is left of a line without a newline, and the truncation marker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            tails = [(stream, text) for stream, text in self._partial.items() if text and self._keep(text)]
            dropped = self.dropped_bytes
        for stream, text in tails:
            self._queue(stream, [text])
        if dropped:
            self._queue("stderr", [f"[truncated: {dropped} bytes dropped]"])

    async def close(self) -> None:
        """Finish, and store every pending line before the call's event is reported."""
        self.finish()
        if self.lines:
            await self.batcher.flush()

    def redact(self, text: str) -> str:
        if self.secrets:  # resolved by the call itself; the runtime learns them when it reports
            self.redactor.add(*self.secrets)
        return str(self.redactor.redact_text(text))

    def _keep(self, line: str) -> bool:
        size = len(line.encode("utf-8", errors="replace")) + 1
        if self.dropped_bytes or self.kept_bytes + size > self.max_bytes:
            self.dropped_bytes += size
            return False
        self.kept_bytes += size
        return True

    def _queue(self, stream: str, lines: list[str]) -> None:
        now = self.batcher.clock().isoformat()
        self.lines += len(lines)
        self.batcher.add([(self, LogRecord(self.execution_id, self.step, line, stream, self.loop_index, now))
                          for line in lines])


class LogBatcher:
    """Writes the lines of every call of this process to ``sink`` in batches (see the module)."""

    def __init__(self, sink: LogSink, *, max_bytes: int | None = None, clock: Clock = utc_now) -> None:
        from noetl.settings import load_settings

        self.sink = sink
        self.clock = clock
        self.max_bytes = load_settings().log_max_bytes if max_bytes is None else max_bytes
        self._pending: list[tuple[CallLog, LogRecord]] = []
        self._lock = threading.Lock()
        self._write_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def open_call(self, execution_id: str, step: str, loop_index: int | None, *, redactor: Any,
                  secrets: set[str]) -> CallLog:
        """A call's log; called on the event loop that will flush it. ``redactor``: the execution's,
        used even while it knows no secret yet (it may learn one before the call's lines are flushed)."""
        self._start()
        if redactor is None:
            from noetl.secrets import Redactor

            redactor = Redactor()
        return CallLog(self, execution_id, step, loop_index, redactor=redactor, secrets=secrets,
                       max_bytes=self.max_bytes)

    def add(self, rows: list[tuple[CallLog, LogRecord]]) -> None:
        with self._lock:
            before = len(self._pending)
            self._pending.extend(rows)
            after = len(self._pending)
        if before == 0:
            self._signal("wake")
        if before < FLUSH_LINES <= after:
            self._signal("full")

    async def flush(self) -> None:
        """Write every pending line now (in the order they came; one batch at a time)."""
        assert self._write_lock is not None
        async with self._write_lock:
            with self._lock:
                rows, self._pending = self._pending, []
                if self._wake is not None and self._full is not None:
                    self._wake.clear()
                    self._full.clear()
            if not rows:
                return
            records = []
            for call, record in rows:
                # A NUL (binary output) shows as U+FFFD: PostgreSQL's text refuses it, and the whole
                # batch, other calls' lines with it, was dropped.
                record.line = call.redact(record.line).replace("\x00", "\ufffd")
                records.append(record)
            try:
                await self.sink(records)
            except Exception as exc:  # losing log lines must never fail a step or the runtime
                log.warning("%d log line(s) could not be stored: %s", len(records), exc)
                for call, _ in rows:
                    call.lost = True  # its event's own copy stays the one readers use

    async def close(self) -> None:
        """Stop the background flush and store what is still pending."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        if self._write_lock is not None:
            await self.flush()

    def _start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._write_lock = asyncio.Lock()
        self._wake, self._full = asyncio.Event(), asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="noetl-log-flush")
        with self._lock:
            waiting = bool(self._pending)
        if waiting:
            self._wake.set()

    def _signal(self, which: str) -> None:
        event = self._wake if which == "wake" else self._full
        loop = self._loop
        if event is None or loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            event.set()
        else:
            with suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(event.set)

    async def _run(self) -> None:
        assert self._wake is not None and self._full is not None
        while True:
            await self._wake.wait()
            await event_set_within(self._full, FLUSH_SECONDS)
            await self.flush()


def store_sink(store: Any) -> LogSink:
    """Lines go straight into the store (the local runtime, a database worker)."""

    async def write(records: list[LogRecord]) -> None:
        await store.append_logs(records)

    return write

