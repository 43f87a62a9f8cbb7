"""``python``: run a step's Python code and return its result.

The user-facing description (the three code styles, inputs, ``libs``, print capture, errors,
timeouts, isolation and measured costs) is ``docs/python-tool.md``. This module is organised as:

1. loading the source (``code``, ``code_b64``, ``script``);
2. compiling it once per distinct source text (an LRU cache), wrapping code with a top-level
   ``return`` in a function whose line numbers stay those the user wrote;
3. running it: building the globals, executing the body, choosing the result (return value,
   ``result`` variable, or ``main()``), converting it to JSON values, turning exceptions into
   :class:`ToolError` that point at the user's line;
4. where it runs: a daemon worker thread by default, the event loop itself with
   ``isolation: inline``, or a pool of pre-started worker processes with ``isolation: process`` or
   whenever the call has a timeout (only a process can be stopped while it runs CPU-bound code).
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import base64
import binascii
import builtins
import functools
import importlib
import inspect
import io
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import CodeType, FunctionType, TracebackType
from typing import Any, TypeVar

from noetl.errors import ToolError
from noetl.jsonconv import NotJsonable, to_jsonable
from noetl.settings import load_settings
from noetl.tools.base import ToolCall

T = TypeVar("T")

ISOLATION_MODES = ("thread", "inline", "process")

# Every user code object is compiled under this file name, so user frames can be told apart from
# library frames in a traceback whatever step the (shared, cached) code object runs for.
_USER_FILENAME = "<noetl python step>"
_BODY_NAME = "__noetl_step_body__"
_MAX_THREADS = 64  # concurrent in-thread python steps; parallel loops of sleeping code need many
_MAX_LOG_CHARS = 1_000_000  # captured output kept per call; the rest is dropped with a marker
_WORKER_STARTUP_SECONDS = 60.0  # a worker is a fresh interpreter; slow disks can make that take a while
_MAIN_EXTRAS = ("input_data", "execution_id", "context")  # globals main() may also ask for
_MISSING = object()


async def run_python(config: dict[str, Any], call: ToolCall) -> Any:
    request = StepRequest(
        source=_load_source(config, call),
        step=call.step,
        args=dict(call.args),
        execution_id=call.execution_id,
        libs=_libs(config),
    )
    isolation = _isolation(config, call)
    if isolation == "process":
        # Only the code's own use of `context` pays for copying the (possibly large) render context.
        request.context = _plain(call.context) if "context" in request.source else None
        return await _run_in_process(request, call)
    request.context = dict(call.context) if "context" in request.source else None
    return await _run_in_this_process(request, call, inline=isolation == "inline")


@dataclass(slots=True)
class StepRequest:
    """What one run needs; plain data so it can be pickled to a worker process."""

    source: str
    step: str
    args: dict[str, Any]
    execution_id: str
    libs: dict[str, str]
    context: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------------
# 1. Configuration


def _load_source(config: dict[str, Any], call: ToolCall) -> str:
    # Priority as in the user's documents: script > code_b64 > code.
    script = config.get("script")
    if script:
        return _read_script(script, call)
    encoded = config.get("code_b64")
    if encoded:
        return _decode_b64(encoded)
    code = config.get("code")
    if code is None or (isinstance(code, str) and not code.strip()):
        raise ToolError("python tool needs `code` (or `code_b64`, or `script`)", kind="config")
    if not isinstance(code, str):
        raise ToolError(f"python `code` must be a string, got {type(code).__name__}", kind="config")
    return code


def _decode_b64(encoded: Any) -> str:
    try:
        return base64.b64decode(str(encoded), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise ToolError(f"python `code_b64` is not valid base64 UTF-8 text: {exc}", kind="config") from None


def _read_script(script: Any, call: ToolCall) -> str:
    if isinstance(script, str):
        script = {"uri": script}
    if not isinstance(script, dict) or not script.get("uri"):
        raise ToolError("python `script` needs a `uri`", kind="config")
    source = script.get("source") or {}
    source_type = (source.get("type") if isinstance(source, dict) else source) or "file"
    if source_type != "file":
        raise ToolError(
            f"python script source {source_type!r} is not available in this installation; "
            "install the extra that provides it (only `file` is built in)",
            kind="config",
        )
    path = _find_script_file(str(script["uri"]), call.playbook_dir)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolError(f"cannot read python script {str(path)!r}: {exc}", kind="config") from None


def _find_script_file(uri: str, playbook_dir: Path | None) -> Path:
    relative = Path(uri.removeprefix("file://")).expanduser()
    if relative.is_absolute():
        candidates = [relative]
    else:
        # Beside the playbook's own file first, then the working directory (spec, section 4).
        candidates = [base / relative for base in (playbook_dir, Path.cwd()) if base is not None]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(candidate) for candidate in candidates)
    raise ToolError(f"python script {uri!r} not found (looked in: {tried})", kind="config")


def _libs(config: dict[str, Any]) -> dict[str, str]:
    """``libs`` as ``{alias: module}``; a list of module names is accepted as ``import name``."""
    libs = config.get("libs") or {}
    if isinstance(libs, list):
        libs = {str(name).split(".")[0]: str(name) for name in libs}
    if not isinstance(libs, dict) or not all(isinstance(module, str) for module in libs.values()):
        raise ToolError("python `libs` must map aliases to module names, e.g. {np: numpy}", kind="config")
    return {str(alias): module for alias, module in libs.items()}


def _isolation(config: dict[str, Any], call: ToolCall) -> str:
    mode = config.get("isolation") or "thread"
    if mode not in ISOLATION_MODES:
        raise ToolError(
            f"python `isolation` must be one of {', '.join(ISOLATION_MODES)}, got {mode!r}", kind="config"
        )
    if call.timeout is not None:
        return "process"  # a thread cannot be stopped; a process can
    return str(mode)


def _plain(value: Any) -> Any:
    """Copy mappings and sequences into dicts and lists so they pickle whatever their own types."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------------
# 2. Compiling


@dataclass(frozen=True, slots=True)
class _Compiled:
    code: CodeType  # the module, or (wrapped) the body function's code
    wrapped: bool  # style C: the source has a top-level `return`
    is_async: bool  # the body awaits at top level, so running it yields a coroutine


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> _Compiled:
    """Compile once per distinct source text; repeated steps and loop iterations hit the cache."""
    tree = ast.parse(source, _USER_FILENAME)
    top_level = list(_top_level_nodes(tree))
    is_async = any(_is_async_node(node) for node in top_level)
    if not any(isinstance(node, ast.Return) for node in top_level):
        code = compile(tree, _USER_FILENAME, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        return _Compiled(code, wrapped=False, is_async=is_async)
    return _Compiled(_compile_as_function(tree, is_async), wrapped=True, is_async=is_async)


def _top_level_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """Nodes that run in the module's own scope (not inside a def, lambda or class body)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            pending.extend(ast.iter_child_nodes(node))


def _is_async_node(node: ast.AST) -> bool:
    if isinstance(node, ast.comprehension):
        return bool(node.is_async)
    return isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith)


def _compile_as_function(tree: ast.Module, is_async: bool) -> CodeType:
    """Wrap the module body in a function so a top-level ``return`` is legal.

    The statements are moved, not re-parsed, so every line number is the one the user wrote. A
    ``global`` declaration of every name the body binds keeps module semantics: assignments land in
    the globals (``result`` included) and reading an input before re-assigning it still works.
    """
    future_imports = [node for node in tree.body if _is_future_import(node)]
    body = [node for node in tree.body if not _is_future_import(node)]
    prefix = "async def" if is_async else "def"
    function = ast.parse(f"{prefix} {_BODY_NAME}():\n    pass").body[0]
    assert isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
    names = sorted(_names_bound_in(body))
    function.body = [ast.Global(names=names), *body] if names else body
    module = ast.Module(body=[*future_imports, function], type_ignores=[])
    ast.fix_missing_locations(module)
    code = compile(module, _USER_FILENAME, "exec", dont_inherit=True)
    return next(
        const for const in code.co_consts if isinstance(const, CodeType) and const.co_name == _BODY_NAME
    )


def _is_future_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == "__future__"


_NAMED_BINDINGS = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.ExceptHandler,
    ast.MatchAs,
    ast.MatchStar,
)


def _names_bound_in(body: list[ast.stmt]) -> set[str]:
    # Names bound in nested scopes are collected too: declaring them global at the wrapper's level
    # changes nothing for the nested scope. Annotated names are left out because Python forbids
    # `global x` together with `x: int = ...` in one scope.
    names: set[str] = set()
    annotated: set[str] = set()
    for node in (child for statement in body for child in ast.walk(statement)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(
                alias.asname or alias.name.split(".")[0] for alias in node.names if alias.name != "*"
            )
        elif isinstance(node, _NAMED_BINDINGS) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotated.add(node.target.id)
    return names - annotated


# --------------------------------------------------------------------------------------------------
# 3. Running (shared by every isolation mode, including the worker processes)


class OutputCapture(io.TextIOBase):
    """Collects what one call prints. Handed to user code as its ``print`` (and, in a worker
    process, as ``sys.stdout``/``sys.stderr``), so concurrent calls never share a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def write(self, text: str) -> int:
        if self._size >= _MAX_LOG_CHARS:
            self._dropped += len(text)
        else:
            self._parts.append(text)
            self._size += len(text)
        return len(text)

    def print(
        self,
        *values: Any,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        if file is not None and file is not self and file is not sys.stdout and file is not sys.stderr:
            builtins.print(*values, sep=sep, end=end, file=file, flush=flush)  # e.g. an open file
            return
        separator = " " if sep is None else sep
        self.write(separator.join(map(str, values)) + ("\n" if end is None else end))

    def lines(self) -> list[str]:
        lines = "".join(self._parts).splitlines()
        if self._dropped:
            lines.append(f"... {self._dropped} more characters of output dropped")
        return lines


@dataclass(slots=True)
class _Finished:
    """A run that completed synchronously; ``value`` is already JSON-ready."""

    value: Any


def start_step(request: StepRequest, output: OutputCapture) -> _Finished | Awaitable[Any]:
    """Run the step as far as it goes without awaiting.

    Returns the finished, converted result, or an awaitable (top-level ``await`` or an
    ``async def main``) for the caller to finish with :func:`finish_step` on an event loop.
    """
    try:
        compiled = _compile(request.source)
    except SyntaxError as exc:
        raise _syntax_error(exc, request.step) from None
    namespace = _globals(request, output)
    try:
        outcome = _run_body(compiled, namespace, request.args)
    except ToolError:
        raise
    except BaseException as exc:  # noqa: B036 - SystemExit and KeyboardInterrupt fail the step too
        raise _user_error(exc, request) from None
    if inspect.isawaitable(outcome):
        return outcome
    return _Finished(_jsonable_result(outcome))


async def finish_step(pending: Awaitable[Any], request: StepRequest) -> Any:
    try:
        value = await pending
    except (ToolError, asyncio.CancelledError):
        raise
    except BaseException as exc:  # noqa: B036
        raise _user_error(exc, request) from None
    return _jsonable_result(value)


def _globals(request: StepRequest, output: OutputCapture) -> dict[str, Any]:
    namespace: dict[str, Any] = {
        "__name__": "__noetl_step__",
        "__builtins__": builtins,
        "print": output.print,
        "execution_id": request.execution_id,
        "input_data": dict(request.args),
    }
    if request.context is not None:
        namespace["context"] = request.context
    namespace.update(_import_libs(request.libs))
    namespace.update(request.args)  # inputs win over every name above (e.g. an input named input_data)
    return namespace


def _import_libs(libs: dict[str, str]) -> dict[str, Any]:
    modules: dict[str, Any] = {}
    for alias, module_name in libs.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ToolError(
                f"libs: cannot import {module_name!r} (as {alias!r}): {exc}", kind="config"
            ) from None
        if module_name.startswith(alias + "."):
            module = sys.modules[alias]  # `libs: [os.path]` binds `os`, as `import os.path` does
        modules[alias] = module
    return modules


def _run_body(compiled: _Compiled, namespace: dict[str, Any], args: dict[str, Any]) -> Any:
    initial_result = namespace.get("result", _MISSING)
    if compiled.wrapped:
        returned = FunctionType(compiled.code, namespace)()
    else:
        # With PyCF_ALLOW_TOP_LEVEL_AWAIT, eval() of code that awaits returns a coroutine.
        returned = eval(compiled.code, namespace)  # noqa: S307 - running user code is the point
    if compiled.is_async:
        return _finish_async_body(returned, namespace, args, initial_result)
    return _choose_result(returned, namespace, args, initial_result)


async def _finish_async_body(
    body: Awaitable[Any], namespace: dict[str, Any], args: dict[str, Any], initial_result: Any
) -> Any:
    value = _choose_result(await body, namespace, args, initial_result)
    return await value if inspect.isawaitable(value) else value


def _choose_result(
    returned: Any, namespace: dict[str, Any], args: dict[str, Any], initial_result: Any
) -> Any:
    """Style C's return value, else a ``result`` the code assigned (style A), else ``main()`` (B)."""
    if returned is not None:
        return returned
    result = namespace.get("result", _MISSING)
    if result is not initial_result and result is not _MISSING:
        return result  # also covers `result = main(x)`: main is not called a second time
    main = namespace.get("main")
    if callable(main) and main is not args.get("main"):
        return _call_main(main, namespace, args)
    return None


def _call_main(main: Callable[..., Any], namespace: dict[str, Any], args: dict[str, Any]) -> Any:
    try:
        parameters = list(inspect.signature(main).parameters.values())
    except (TypeError, ValueError):  # no introspectable signature: call it bare
        return main()
    positional, keywords, missing = _bind_by_name(parameters, namespace, args)
    if missing:
        given = ", ".join(sorted(args)) or "none"
        raise ToolError(
            f"main() needs input(s) {', '.join(missing)} that the step does not provide (inputs given: {given})",
            kind="input",
        )
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        bound = {parameter.name for parameter in parameters}
        keywords.update((name, value) for name, value in args.items() if name not in bound)
    return main(*positional, **keywords)


def _bind_by_name(
    parameters: list[inspect.Parameter], namespace: dict[str, Any], args: dict[str, Any]
) -> tuple[list[Any], dict[str, Any], list[str]]:
    """Inputs for main's named parameters: (positional-only values, keywords, missing names)."""
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    missing: list[str] = []
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if parameter.name in args:
            value = args[parameter.name]
        elif parameter.name in _MAIN_EXTRAS and parameter.name in namespace:
            value = namespace[parameter.name]
        else:
            if parameter.default is parameter.empty:
                missing.append(parameter.name)
            continue
        if parameter.kind is parameter.POSITIONAL_ONLY:
            positional.append(value)
        else:
            keywords[parameter.name] = value
    return positional, keywords, missing


def _jsonable_result(value: Any) -> Any:
    try:
        return to_jsonable(value)
    except NotJsonable as exc:
        raise ToolError(f"the step's result is not JSON-serialisable: {exc}", kind="result") from None


# ---- errors pointing at the user's code


def _user_error(exc: BaseException, request: StepRequest) -> ToolError:
    if isinstance(exc, SyntaxError) and exc.filename == _USER_FILENAME:
        return _syntax_error(exc, request.step)
    name = type(exc).__name__
    text = _safe_str(exc)
    message = f"{name}: {text}" if text else name
    frames = _user_frames(exc.__traceback__)
    details = {
        "line": frames[-1][0] if frames else None,
        "traceback": _format_traceback(frames, request, message),
    }
    return ToolError(message, kind=name, details=details)


def _syntax_error(exc: SyntaxError, step: str) -> ToolError:
    message = f"SyntaxError: {exc.msg}"
    code_line = (exc.text or "").strip()
    text = (
        f'  File "<step {step}>", line {exc.lineno}\n' + (f"    {code_line}\n" if code_line else "") + message
    )
    return ToolError(message, kind="SyntaxError", details={"line": exc.lineno, "traceback": text})


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the original error
        return "<unprintable exception>"


def _user_frames(tb: TracebackType | None) -> list[tuple[int, str]]:
    """(line, function) of each traceback frame that runs the user's code, outermost first."""
    frames = []
    for frame, line in traceback.walk_tb(tb):
        if frame.f_code.co_filename == _USER_FILENAME:
            function = frame.f_code.co_name
            frames.append((line, "<module>" if function == _BODY_NAME else function))
    return frames


def _format_traceback(frames: list[tuple[int, str]], request: StepRequest, message: str) -> str:
    source_lines = request.source.splitlines()
    parts = ["Traceback (most recent call last):"]
    for line, function in frames:
        parts.append(f'  File "<step {request.step}>", line {line}, in {function}')
        if 0 < line <= len(source_lines) and source_lines[line - 1].strip():
            parts.append(f"    {source_lines[line - 1].strip()}")
    parts.append(message)
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# 4a. In this process: a daemon worker thread (default) or the event loop itself (inline)


async def _run_in_this_process(request: StepRequest, call: ToolCall, *, inline: bool) -> Any:
    output = OutputCapture()
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
_processes: ProcessPool | None = None


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


# --------------------------------------------------------------------------------------------------
# 4b. In a worker process: stoppable (timeouts), and a crash only kills the worker


async def _run_in_process(request: StepRequest, call: ToolCall) -> Any:
    pool = _process_pool()
    job = ProcessJob()
    try:
        reply = await _waiter_pool().run(functools.partial(pool.run, request, call.timeout, job))
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
        self._worker: Worker | None = None
        self._cancelled = False

    def attach(self, worker: Worker) -> bool:
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


class Worker:
    """One pre-started worker process and the socket to it.

    A plain interpreter started with :mod:`subprocess` that imports this module, rather than a
    ``multiprocessing`` child: multiprocessing's spawn and forkserver methods re-import the
    runtime's ``__main__`` in every child, which would re-run a user's unguarded script that
    embeds NoETL. The socket carries pickled :class:`StepRequest` and :class:`WorkerReply` objects.
    """

    def __init__(self) -> None:
        parent_end, child_end = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                _worker_command(child_end.fileno()),
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # fd-level writes by user code never reach the runtime's stdout
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self._conn = Connection(parent_end.detach())
        self._ready = False

    def run(self, request: StepRequest, timeout: float | None) -> WorkerReply:
        self._wait_until_ready()  # so interpreter start-up never counts against the step's timeout
        try:
            self._conn.send(request)  # pickles before writing: a pickling error leaves the socket clean
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise _Unsendable(str(exc)) from None
        except OSError:
            raise self._death() from None
        try:
            if not self._conn.poll(timeout):
                self.kill()
                raise ToolError(
                    f"timed out after {timeout:g} s",
                    kind="timeout",
                    retryable=True,
                    details={"timeout": timeout},
                )
            reply: WorkerReply = self._conn.recv()
        except (EOFError, OSError):
            raise self._death() from None
        return reply

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


def _worker_command(fd: int) -> list[str]:
    # The parent's sys.path makes the child import the very same noetl package (a source checkout
    # or an installed one), whatever the working directory.
    bootstrap = (
        f"import sys; sys.path[:] = {sys.path!r}; from {__name__} import serve_worker; serve_worker({fd})"
    )
    return [sys.executable, "-c", bootstrap]


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
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._starting = 0
        self._closed = False
        self._started = False

    def run(self, request: StepRequest, timeout: float | None, job: ProcessJob) -> WorkerReply:
        worker = self._acquire()
        reusable = False
        try:
            if not job.attach(worker):
                reusable = True
                raise ToolError("the step was cancelled", kind="cancelled")
            reply = worker.run(request, timeout)
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

    def _acquire(self) -> Worker:
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

    def _release(self, worker: Worker, reusable: bool) -> None:
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

    def _start_worker(self, *, idle: bool) -> Worker:
        """Start a worker counted in ``_starting``; park it as idle or return it to the caller."""
        try:
            worker = Worker()
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


async def shutdown_python_pool() -> None:
    """Stop the worker processes and threads; the next python step starts fresh pools."""
    global _processes, _threads, _waiters
    with _pools_lock:
        processes, _processes = _processes, None
        thread_pools = [pool for pool in (_threads, _waiters) if pool is not None]
        _threads = _waiters = None
    if processes is not None:
        atexit.unregister(_close_pools_at_exit)
        await asyncio.to_thread(processes.close)
    for pool in thread_pools:
        pool.shutdown()


# ---- inside a worker process


def serve_worker(fd: int) -> None:
    """Entry point of a worker process (see :class:`Worker`): run requests until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runtime's to handle
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
        conn.send(_execute(request))
    conn.close()


def _execute(request: StepRequest) -> WorkerReply:
    output = OutputCapture()
    # One call at a time runs here, so swapping sys.stdout is safe and also captures direct writes.
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = output
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
