"""``python``: run a step's Python code and return its result.

The user-facing description (the three code styles, inputs, ``libs``, print capture, errors,
timeouts, isolation and measured costs) is ``docs/python-tool.md``. The tool is organised as:

1. this module: the tool's entry point, loading the source (``code``, ``code_b64``, ``script``)
   and the rest of its configuration, and choosing where the code runs;
2. :mod:`noetl.tools.python_code`: compiling the source and running it, shared by every
   isolation mode (result choice, ``main()`` binding, errors that point at the user's line);
3. :mod:`noetl.tools.python_threads`: a daemon worker thread by default, or the event loop itself
   with ``isolation: inline`` and for code that can only run briefly (:mod:`noetl.tools.python_brief`);
4. :mod:`noetl.tools.python_processes`: a pool of pre-started worker processes with
   ``isolation: process`` or whenever the call has a timeout (only a process can be stopped while
   it runs CPU-bound code).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import sys
from collections.abc import Mapping
from typing import Any

from noetl.errors import ToolError
from noetl.tools._script import load_script
from noetl.tools.base import ToolCall
from noetl.tools.environment import tool_environment
from noetl.tools.python_brief import runs_briefly
from noetl.tools.python_code import StepRequest
from noetl.tools.python_threads import _detach_thread_pools, _pools_lock, _run_in_this_process

ISOLATION_MODES = ("thread", "inline", "process")


async def run_python(config: dict[str, Any], call: ToolCall) -> Any:
    request = StepRequest(
        source=await _load_source(config, call),
        step=call.step,
        args=dict(call.args),
        execution_id=call.execution_id,
        libs=_libs(config),
        env=tool_environment(config.get("env"), tool="python", safe=call.environment),
    )
    isolation = _isolation(config, call)
    if isolation == "process":
        # Only the code's own use of `context` pays for copying the (possibly large) render context.
        request.context = _plain(call.context) if "context" in request.source else None
        # Imported by the first step that runs in a worker process: the others need no multiprocessing.
        from noetl.tools.python_processes import _run_in_process

        return await _run_in_process(request, call)
    request.context = dict(call.context) if "context" in request.source else None
    return await _run_in_this_process(request, call, inline=isolation == "inline" or _brief(request, isolation))


def _brief(request: StepRequest, isolation: str) -> bool:
    """A thread-mode step whose code can only run briefly runs on the event loop: the hand-off to a
    thread would cost more than the code (see noetl.tools.python_brief). Not with ``libs``: a first
    import runs the module's own code."""
    return isolation == "thread" and not request.libs and runs_briefly(request.source, request.args)


# --------------------------------------------------------------------------------------------------
# Configuration: the source, `libs` and where the code runs


async def _load_source(config: dict[str, Any], call: ToolCall) -> str:
    # Priority as in the user's documents: script > code_b64 > code.
    script = config.get("script")
    if script:
        return await load_script(script, call)
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


_LIBS_HELP = "python `libs` must map aliases to modules: {np: numpy} or {dumps: {from: json, import: dumps}}"


def _libs(config: dict[str, Any]) -> dict[str, str]:
    """``libs`` as ``{alias: "module"}`` or, for ``{alias: {from: module, import: name}}``,
    ``{alias: "module:name"}``; a list of module names is accepted as ``import name``."""
    libs = config.get("libs") or {}
    if isinstance(libs, list):
        libs = {str(name).split(".")[0]: str(name) for name in libs}
    if not isinstance(libs, dict):
        raise ToolError(_LIBS_HELP, kind="config")
    return {str(alias): _lib_target(alias, spec) for alias, spec in libs.items()}


def _lib_target(alias: Any, spec: Any) -> str:
    if isinstance(spec, str) and spec.strip():
        return spec.strip()
    if isinstance(spec, dict) and isinstance(spec.get("from"), str):
        name = spec.get("import", alias)
        if isinstance(name, str) and name.isidentifier():
            return f"{spec['from'].strip()}:{name}"
    raise ToolError(f"{_LIBS_HELP}; got {alias}: {spec!r}", kind="config")


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


async def shutdown_python_pool() -> None:
    """Stop the worker processes and threads; the next python step starts fresh pools."""
    # Not imported: no step of this process ran in a worker process, so there is no pool to stop.
    process_side = sys.modules.get("noetl.tools.python_processes")
    with _pools_lock:
        processes = process_side._detach_process_pool() if process_side is not None else None
        thread_pools = _detach_thread_pools()
    if process_side is not None and processes is not None:
        atexit.unregister(process_side._close_pools_at_exit)
        await asyncio.to_thread(processes.close)
    for pool in thread_pools:
        pool.shutdown()
