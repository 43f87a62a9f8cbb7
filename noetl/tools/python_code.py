"""Compiling and running a python step's code, shared by every isolation mode.

Part of the ``python`` tool (entry point: :mod:`noetl.tools.python`; user-facing description:
``docs/python-tool.md``). This module holds what does not depend on where the code runs:

1. compiling the source once per distinct text (an LRU cache), wrapping code with a top-level
   ``return`` in a function whose line numbers stay those the user wrote;
2. running it: building the globals, executing the body, choosing the result (return value,
   ``result`` variable, or ``main()``), converting it to JSON values, turning exceptions into
   :class:`ToolError` that point at the user's line.

It imports nothing from the runtime beyond errors and JSON conversion, so a worker process
(:mod:`noetl.tools.python_processes`) runs exactly the same code as the threads do.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import functools
import importlib
import inspect
import io
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import CodeType, FunctionType, TracebackType
from typing import Any, NamedTuple

from noetl.errors import ToolError
from noetl.jsonconv import NotJsonable, to_jsonable
from noetl.tools.environment import user_environment

# Every user code object is compiled under this file name, so user frames can be told apart from
# library frames in a traceback whatever step the (shared, cached) code object runs for.
_USER_FILENAME = "<noetl python step>"
_BODY_NAME = "__noetl_step_body__"
_MAX_LOG_CHARS = 1_000_000  # captured output kept per call; the rest is dropped with a marker
_MAIN_EXTRAS = ("input_data", "execution_id", "context")  # globals main() may also ask for
_MISSING = object()
# Results that cannot be awaitable, checked by type before inspect.isawaitable's ABC check.
_NEVER_AWAITABLE = frozenset({type(None), bool, int, float, str, dict, list})


@dataclass(slots=True)
class StepRequest:
    """What one run needs; plain data so it can be pickled to a worker process."""

    source: str
    step: str
    args: dict[str, Any]
    execution_id: str
    libs: dict[str, str]
    context: dict[str, Any] | None = None
    env: dict[str, str] | None = None  # what os.environ shows the code (see noetl.tools.environment)


# --------------------------------------------------------------------------------------------------
# 1. Compiling


class _Compiled(NamedTuple):
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
# 2. Running (shared by every isolation mode, including the worker processes)


class OutputCapture:
    """Collects what one call prints. Its :meth:`print` is the user code's ``print`` (so concurrent
    calls never share a buffer); in a worker process :meth:`stdout` and :meth:`stderr` are also
    ``sys.stdout`` and ``sys.stderr``. ``forward`` also gets every write as it happens (``stream``,
    text): the runtime streams it as logs while the call runs.

    A plain object, not a file: a thread-mode call only needs ``print``, and creating an
    ``io.TextIOBase`` costs several times as much; the file views are made where a file is needed.
    """

    __slots__ = ("_parts", "_size", "_dropped", "_forward")

    def __init__(self, forward: Callable[[str, str], None] | None = None) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0
        self._forward = forward

    def write(self, text: str) -> int:
        return self.write_stream("stdout", text)

    def write_stream(self, stream: str, text: str) -> int:
        if self._size >= _MAX_LOG_CHARS:
            self._dropped += len(text)
        else:
            self._parts.append(text)
            self._size += len(text)
        if self._forward is not None:
            self._forward(stream, text)
        return len(text)

    def stdout(self) -> io.TextIOBase:
        """A file whose writes are this capture's (as stdout)."""
        return _StreamView(self, "stdout")

    def stderr(self) -> io.TextIOBase:
        """A file whose writes are this capture's, marked as stderr."""
        return _StreamView(self, "stderr")

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
        stream = "stderr" if file is not None and file is sys.stderr else "stdout"
        self.write_stream(stream, separator.join(map(str, values)) + ("\n" if end is None else end))

    def lines(self) -> list[str]:
        if not self._parts and not self._dropped:
            return []
        lines = "".join(self._parts).splitlines()
        if self._dropped:
            lines.append(f"... {self._dropped} more characters of output dropped")
        return lines


class _StreamView(io.TextIOBase):
    def __init__(self, capture: OutputCapture, stream: str) -> None:
        super().__init__()
        self._capture = capture
        self._stream = stream

    def write(self, text: str) -> int:
        return self._capture.write_stream(self._stream, text)


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
        with user_environment(request.env):
            outcome = _run_body(compiled, namespace, request.args)
    except ToolError:
        raise
    except BaseException as exc:  # noqa: B036 - SystemExit and KeyboardInterrupt fail the step too
        raise _user_error(exc, request) from None
    if type(outcome) not in _NEVER_AWAITABLE and inspect.isawaitable(outcome):
        return outcome
    return _Finished(_jsonable_result(outcome))


async def finish_step(pending: Awaitable[Any], request: StepRequest) -> Any:
    try:
        with user_environment(request.env):
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
    """``{alias: "module"}`` binds the module, ``{alias: "module:name"}`` the module's attribute."""
    bound: dict[str, Any] = {}
    for alias, target in libs.items():
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ToolError(
                f"libs: cannot import {module_name!r} (as {alias!r}): {exc}", kind="config"
            ) from None
        if attribute:
            try:
                bound[alias] = getattr(module, attribute)
            except AttributeError:
                raise ToolError(
                    f"libs: cannot import {attribute!r} from {module_name!r} (as {alias!r})", kind="config"
                ) from None
            continue
        if module_name.startswith(alias + "."):
            module = sys.modules[alias]  # `libs: [os.path]` binds `os`, as `import os.path` does
        bound[alias] = module
    return bound


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
