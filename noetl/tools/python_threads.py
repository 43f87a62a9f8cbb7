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
# The longest a lone python step holds the event loop before its result is awaited the usual way.
BRIEF_WAIT_SECONDS = 0.002


# --------------------------------------------------------------------------------------------------
# In this process: a daemon worker thread (default) or the event loop itself (inline)


async def _run_in_this_process(request: StepRequest, call: ToolCall, *, inline: bool) -> Any:
    output = OutputCapture(call.output.write if call.output is not None else None)
    try:
        if inline:
            outcome = start_step(request, output)
        else:
            outcome = await _thread_pool().run(functools.partial(start_step, request, output), brief_wait=True)
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
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # Threads done with their last job and waiting for work (a count under ``_lock``: a
        # threading.Semaphore is Python code around a Condition, on both threads of every hand-off).
        self._idle = 0
        self._lock = threading.Lock()
        self._thread_count = 0
        self._in_flight = 0  # jobs submitted and not yet handed back, of every caller

    async def run(self, func: Callable[[], T], *, brief_wait: bool = False) -> T:
        """``func()`` on a pool thread. ``brief_wait``: when no other job of this pool is running,
        block the event loop for at most ``BRIEF_WAIT_SECONDS`` for the result before awaiting it.

        Waking the event loop from another thread (self-pipe, selector, a loop iteration) costs
        several times what a short step's code does; while a lone step runs (a sequential chain) the
        loop usually has nothing else to do, so a bounded wait on a lock is the cheaper hand-off.
        Code that runs longer falls back to the loop's future, so the loop is never held longer.
        """
        loop = asyncio.get_running_loop()
        job = _Job(loop, func)
        with self._lock:
            alone = self._in_flight == 0
            self._in_flight += 1
            new_thread = self._claim_a_thread()
        try:
            self._jobs.put(job)
            if new_thread:
                threading.Thread(target=self._work, name=f"{self._name}-{new_thread}", daemon=True).start()
            if brief_wait and alone and job.ready.acquire(timeout=BRIEF_WAIT_SECONDS):
                return job.outcome()
            future = job.hand_over()
            return job.outcome() if future is None else await future
        finally:
            with self._lock:
                self._in_flight -= 1

    def shutdown(self) -> None:
        """Ask every thread to exit once it is idle (a thread busy in user code is abandoned)."""
        with self._lock:
            count, self._thread_count, self._idle = self._thread_count, 0, 0
        for _ in range(count):
            self._jobs.put(None)

    def _claim_a_thread(self) -> int:
        """Under ``_lock``: take an idle thread for the next job (0), or the number of a new thread
        to start; 0 too when the pool is full and the job waits in the queue for the next free one."""
        if self._idle:
            self._idle -= 1
            return 0
        if self._thread_count >= self._max_threads:
            return 0
        self._thread_count += 1
        return self._thread_count

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job.finish(job.func(), None)
            except BaseException as exc:  # noqa: B036 - handed to the waiting coroutine
                job.finish(None, exc)
            del job  # drop references while idle
            with self._lock:
                self._idle += 1


class _Job:
    """One callable for a pool thread and the hand-off of its result: either the caller is still
    blocked on ``ready`` (a brief wait) or it has taken a future on its loop, never both."""

    __slots__ = ("loop", "func", "ready", "_state", "_result", "_future")

    def __init__(self, loop: asyncio.AbstractEventLoop, func: Callable[[], Any]) -> None:
        self.loop = loop
        self.func = func
        self.ready = threading.Lock()
        self.ready.acquire()  # released by the thread when the result is in
        self._state = threading.Lock()
        self._result: tuple[Any, BaseException | None] | None = None
        self._future: asyncio.Future[Any] | None = None

    def finish(self, value: Any, error: BaseException | None) -> None:
        """On the pool thread: keep the result for a waiting caller, or settle its future."""
        with self._state:
            self._result = (value, error)
            future = self._future
        if future is None:
            self.ready.release()
        else:
            _settle(self.loop, future, value, error)
        self.func = None  # type: ignore[assignment]  # the partial holds the step's data

    def hand_over(self) -> asyncio.Future[Any] | None:
        """On the caller's loop: a future the thread will settle, or None if the result is in."""
        future = self.loop.create_future()
        with self._state:
            if self._result is not None:
                return None
            self._future = future
        return future

    def outcome(self) -> Any:
        assert self._result is not None
        value, error = self._result
        if error is not None:
            raise _as_exception(error)
        return value


def _as_exception(error: BaseException) -> Exception:
    """What the caller sees of a pool thread's error: a BaseException that is not an Exception
    (SystemExit, KeyboardInterrupt raised by a step's code) must not stop the caller's loop."""
    return error if isinstance(error, Exception) else RuntimeError(repr(error))


def _settle(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], value: Any, error: BaseException | None
) -> None:
    def settle() -> None:
        if future.done():  # the waiting coroutine was cancelled
            return
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(_as_exception(error))

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
