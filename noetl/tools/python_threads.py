"""Running a python step in this process: on a daemon worker thread, or inline on the event loop.

Part of the ``python`` tool (entry point: :mod:`noetl.tools.python`). The thread pools live here,
including the one whose threads wait on worker processes (:mod:`noetl.tools.python_processes`),
together with the lock that guards creating and discarding every pool of the tool.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

from noetl.tools.base import ToolCall
from noetl.tools.python_code import OutputCapture, StepRequest, _Finished, finish_step, start_step

T = TypeVar("T")

_MAX_THREADS = 64  # concurrent in-thread python steps; parallel loops of sleeping code need many


# --------------------------------------------------------------------------------------------------
# In this process: a daemon worker thread (default) or the event loop itself (inline)


async def _run_in_this_process(request: StepRequest, call: ToolCall, *, inline: bool) -> Any:
    output = OutputCapture(call.output.write if call.output is not None else None)
    try:
        if inline:
            outcome = start_step(request, output)
        else:
            outcome = await _thread_pool().run(functools.partial(start_step, request, output))
        if isinstance(outcome, _Finished):
            return outcome.value
        # Awaitable code runs on the caller's loop: it is asynchronous, so it shares the loop.
        return await finish_step(outcome, request)
    finally:
        call.logs.extend(output.lines())


class DaemonThreadPool:
    """Runs blocking callables on daemon threads and resolves futures on the caller's event loop.

    Not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at interpreter exit, so a
    step stuck in ``while True: pass`` would keep the runtime from ever exiting. Daemon threads
    do not. It is also loop-agnostic: each job carries the loop that waits for it.
    """

    def __init__(self, max_threads: int, name: str) -> None:
        self._max_threads = max_threads
        self._name = name
        self._jobs: queue.SimpleQueue[
            tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]] | None
        ] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one token per thread waiting for work
        self._lock = threading.Lock()
        self._thread_count = 0

    async def run(self, func: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, func))
        self._ensure_a_thread_is_free()
        return await future

    def shutdown(self) -> None:
        """Ask every thread to exit once it is idle (a thread busy in user code is abandoned)."""
        with self._lock:
            count, self._thread_count = self._thread_count, 0
        for _ in range(count):
            self._jobs.put(None)

    def _ensure_a_thread_is_free(self) -> None:
        if self._idle.acquire(blocking=False):
            return
        with self._lock:
            if self._thread_count >= self._max_threads:
                return  # the job waits in the queue for the next free thread
            self._thread_count += 1
            number = self._thread_count
        threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True).start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, func = job
            try:
                _settle(loop, future, func(), None)
            except BaseException as exc:  # noqa: B036 - handed to the waiting coroutine
                _settle(loop, future, None, exc)
            del job, loop, future, func  # drop references while idle
            self._idle.release()


def _settle(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], value: Any, error: BaseException | None
) -> None:
    def settle() -> None:
        if future.done():  # the waiting coroutine was cancelled
            return
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error if isinstance(error, Exception) else RuntimeError(repr(error)))

    with suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
        loop.call_soon_threadsafe(settle)


_pools_lock = threading.Lock()
_threads: DaemonThreadPool | None = None  # runs user code
_waiters: DaemonThreadPool | None = None  # waits on worker processes, so it never competes with user code


def _thread_pool() -> DaemonThreadPool:
    global _threads
    if _threads is None:
        with _pools_lock:
            if _threads is None:
                _threads = DaemonThreadPool(_MAX_THREADS, "noetl-python")
    return _threads


def _waiter_pool() -> DaemonThreadPool:
    global _waiters
    if _waiters is None:
        with _pools_lock:
            if _waiters is None:
                _waiters = DaemonThreadPool(_MAX_THREADS, "noetl-python-wait")
    return _waiters


def _detach_thread_pools() -> list[DaemonThreadPool]:
    """Forget the thread pools so the next call starts fresh ones; the caller holds ``_pools_lock``."""
    global _threads, _waiters
    pools = [pool for pool in (_threads, _waiters) if pool is not None]
    _threads = _waiters = None
    return pools
