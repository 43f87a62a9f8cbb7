"""Running a python step in a pre-started worker process: stoppable, and a crash only kills the worker.

Part of the ``python`` tool (entry point: :mod:`noetl.tools.python`), used with
``isolation: process`` and whenever the call has a timeout (only a process can be stopped while
it runs CPU-bound code). The runtime side is the :class:`ProcessPool` of :class:`CodeProcess`
processes; :func:`serve_worker` is the entry point each worker process runs.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from noetl.errors import ToolError
from noetl.settings import load_settings
from noetl.tools.base import ToolCall
from noetl.tools.environment import protect_process_environment, start_python_child
from noetl.tools.python_code import (
    OutputCapture,
    StepRequest,
    _Finished,
    _user_error,
    finish_step,
    start_step,
)
from noetl.tools.python_threads import _pools_lock, _waiter_pool

_MAX_STREAMED_CHARS = 16 * 1024 * 1024  # output a worker sends while the code runs; the log keeps less
_WORKER_STARTUP_SECONDS = 60.0  # a worker is a fresh interpreter; slow disks can make that take a while


# --------------------------------------------------------------------------------------------------
# In the runtime: the pool of worker processes and the calls waiting on them


async def _run_in_process(request: StepRequest, call: ToolCall) -> Any:
    pool = _process_pool()
    job = ProcessJob()
    try:
        on_output = call.output.write if call.output is not None else None
        reply = await _waiter_pool().run(functools.partial(pool.run, request, call.timeout, job, on_output))
    except asyncio.CancelledError:
        job.cancel()  # stop the code, even CPU-bound, instead of letting it run on unobserved
        raise
    call.logs.extend(reply.logs)
    if reply.error is not None:
        raise ToolError(**reply.error)
    return reply.value


@dataclass(slots=True)
class WorkerReply:
    value: Any = None
    error: dict[str, Any] | None = None  # ToolError keyword arguments
    logs: list[str] = field(default_factory=list)


class ProcessJob:
    """Links one waiting call to the worker running it, so the call can be cancelled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._worker: CodeProcess | None = None
        self._cancelled = False

    def attach(self, worker: CodeProcess) -> bool:
        with self._lock:
            self._worker = None if self._cancelled else worker
            return not self._cancelled

    def detach(self) -> None:
        with self._lock:
            self._worker = None

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._worker is not None:
                self._worker.kill()


class _Unsendable(Exception):
    """The request could not be pickled; nothing reached the worker, which stays usable."""


class CodeProcess:
    """One pre-started worker process and the socket to it.

    A plain interpreter started with :mod:`subprocess` that imports this module, rather than a
    ``multiprocessing`` child: multiprocessing's spawn and forkserver methods re-import the
    runtime's ``__main__`` in every child, which would re-run a user's unguarded script that
    embeds NoETL. The socket carries pickled :class:`StepRequest` and :class:`WorkerReply` objects.
    """

    def __init__(self) -> None:
        # user code in the child cannot read this process's environment in /proc, nor its settings
        self.process, self._conn = start_python_child(__name__, "serve_worker")
        self._ready = False

    def run(self, request: StepRequest, timeout: float | None,
            on_output: Callable[[str, str], None] | None = None) -> WorkerReply:
        """Run one request; the output the code writes meanwhile arrives as ``("output", stream,
        text)`` messages before the reply and goes to ``on_output``."""
        self._wait_until_ready()  # so interpreter start-up never counts against the step's timeout
        try:
            self._conn.send(request)  # pickles before writing: a pickling error leaves the socket clean
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise _Unsendable(str(exc)) from None
        except OSError:
            raise self._death() from None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not self._conn.poll(left):
                    self.kill()
                    raise ToolError(
                        f"timed out after {timeout:g} s",
                        kind="timeout",
                        retryable=True,
                        details={"timeout": timeout},
                    )
                message = self._conn.recv()
                if isinstance(message, WorkerReply):
                    return message
                if on_output is not None and isinstance(message, tuple) and len(message) == 3:
                    on_output(message[1], message[2])
        except (EOFError, OSError):
            raise self._death() from None

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        with suppress(OSError):
            self.process.kill()

    def reap(self) -> None:
        """Kill the process and wait for it, so it does not linger as a zombie."""
        self.kill()
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(10.0)

    def stop(self) -> None:
        """Stop the process (politely when idle), reap it and close the socket."""
        if self.is_alive():
            with suppress(OSError):
                self._conn.send(None)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(2.0)
        self.reap()
        self._conn.close()

    def _wait_until_ready(self) -> None:
        if self._ready:
            return
        try:
            if not self._conn.poll(_WORKER_STARTUP_SECONDS):
                self.kill()
                raise ToolError("a python worker process did not start in time", kind="crash", retryable=True)
            self._conn.recv()
        except (EOFError, OSError):
            raise self._death() from None
        self._ready = True

    def _death(self) -> ToolError:
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(5.0)
        code = self.process.returncode
        if code is not None and code < 0:
            how = f"was killed by signal {_signal_name(-code)}"
        else:
            how = f"exited with code {code}"
        return ToolError(
            f"the python worker process running the step {how}", kind="crash", details={"exitcode": code}
        )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class ProcessPool:
    """``size`` worker processes, started together on first use, each running one call at a time.

    Blocking methods: called from pool threads, never from the event loop. A worker that times
    out, crashes or is cancelled is killed and replaced at once, so the pool stays warm.
    """

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._cond = threading.Condition()
        self._idle: list[CodeProcess] = []
        self._all: set[CodeProcess] = set()
        self._starting = 0
        self._closed = False
        self._started = False

    def run(self, request: StepRequest, timeout: float | None, job: ProcessJob,
            on_output: Callable[[str, str], None] | None = None) -> WorkerReply:
        worker = self._acquire()
        reusable = False
        try:
            if not job.attach(worker):
                reusable = True
                raise ToolError("the step was cancelled", kind="cancelled")
            reply = worker.run(request, timeout, on_output)
            reusable = True
            return reply
        except _Unsendable as exc:
            reusable = True
            raise ToolError(
                f"the step's inputs cannot be sent to a worker process: {exc}", kind="input"
            ) from None
        finally:
            job.detach()
            self._release(worker, reusable)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._all.difference_update(idle)
            busy = list(self._all)
            self._cond.notify_all()
        for worker in idle:
            worker.stop()
        for worker in busy:
            worker.reap()  # its waiting call reports a crash and closes the socket

    def _acquire(self) -> CodeProcess:
        self._start_all_once()
        with self._cond:
            while True:
                if self._closed:
                    raise ToolError("the python worker pool is shut down", kind="crash", retryable=True)
                if self._idle:
                    worker = self._idle.pop()
                    if worker.is_alive():
                        return worker
                    self._all.discard(worker)  # died while idle (e.g. killed from outside)
                    worker.stop()
                    continue
                if len(self._all) + self._starting < self._size:
                    self._starting += 1
                    break
                self._cond.wait()
        return self._start_worker(idle=False)

    def _release(self, worker: CodeProcess, reusable: bool) -> None:
        if reusable and worker.is_alive():
            with self._cond:
                if not self._closed:
                    self._idle.append(worker)
                    self._cond.notify()
                    return
        with self._cond:
            self._all.discard(worker)
            replace = not self._closed
            if replace:
                self._starting += 1
        worker.stop()
        if replace:
            with suppress(ToolError):  # the next call retries the start
                self._start_worker(idle=True)

    def _start_all_once(self) -> None:
        with self._cond:
            if self._started:
                return
            self._started = True
            missing = self._size - len(self._all) - self._starting
            self._starting += missing
        for _ in range(missing):
            with suppress(ToolError):
                self._start_worker(idle=True)

    def _start_worker(self, *, idle: bool) -> CodeProcess:
        """Start a worker counted in ``_starting``; park it as idle or return it to the caller."""
        try:
            worker = CodeProcess()
        except Exception as exc:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
            raise ToolError(
                f"cannot start a python worker process: {exc}", kind="crash", retryable=True
            ) from exc
        with self._cond:
            self._starting -= 1
            closed = self._closed
            if not closed:
                self._all.add(worker)
                if idle:
                    self._idle.append(worker)
                    self._cond.notify()
        if closed:
            worker.stop()
            raise ToolError("the python worker pool is shut down", kind="crash", retryable=True)
        return worker


_processes: ProcessPool | None = None


def _process_pool() -> ProcessPool:
    global _processes
    if _processes is None:
        with _pools_lock:
            if _processes is None:
                _processes = ProcessPool(load_settings().python_pool_size)
                # Busy workers are killed at exit rather than left running after the runtime.
                atexit.register(_close_pools_at_exit)
    return _processes


def _close_pools_at_exit() -> None:
    global _processes
    pool, _processes = _processes, None
    if pool is not None:
        pool.close()


def _detach_process_pool() -> ProcessPool | None:
    """Forget the process pool so the next call starts a fresh one; the caller holds ``_pools_lock``."""
    global _processes
    pool, _processes = _processes, None
    return pool


# ---- inside a worker process


def serve_worker(fd: int) -> None:
    """Entry point of a worker process (see :class:`CodeProcess`): run requests until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runtime's to handle
    # Dumpable again since its exec: the inputs and secrets of every step it runs would be readable
    # in /proc/<pid>/mem by the code of the other worker processes and shell steps of the same user.
    protect_process_environment()
    _exit_when_parent_exits()
    conn = Connection(fd)
    conn.send("ready")
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request is None:
            break
        sender = _OutputSender(conn)
        reply = _execute(request, sender)
        with sender.lock:
            sender.open = False  # a thread the code left running must not write into the next call
            conn.send(reply)
    conn.close()


class _OutputSender:
    """Sends the code's output to the runtime as it is written (up to what the capture keeps)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.open = True
        self.sent = 0

    def __call__(self, stream: str, text: str) -> None:
        with self.lock:
            if not self.open or self.sent > _MAX_STREAMED_CHARS:
                return
            self.sent += len(text)
            with suppress(OSError):
                self.conn.send(("output", stream, text))


def _execute(request: StepRequest, sender: _OutputSender | None = None) -> WorkerReply:
    output = OutputCapture(sender)
    # One call at a time runs here, so swapping sys.stdout is safe and also captures direct writes.
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = output.stdout(), output.stderr()
    try:
        outcome = start_step(request, output)
        value = (
            outcome.value if isinstance(outcome, _Finished) else asyncio.run(finish_step(outcome, request))
        )
        return WorkerReply(value=value, logs=output.lines())
    except ToolError as exc:
        return WorkerReply(error=_error_arguments(exc), logs=output.lines())
    except BaseException as exc:  # noqa: B036 - e.g. SystemExit raised while asyncio.run cleans up
        return WorkerReply(error=_error_arguments(_user_error(exc, request)), logs=output.lines())
    finally:
        sys.stdout, sys.stderr = saved


def _error_arguments(error: ToolError) -> dict[str, Any]:
    return {
        "message": error.message,
        "kind": error.kind,
        "retryable": error.retryable,
        "details": error.details,
    }


def _exit_when_parent_exits() -> None:
    # If the runtime dies (even by SIGKILL) while this worker is busy, do not linger as an orphan.
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="noetl-parent-watch", daemon=True).start()
