"""``python``: run a step's Python code and return its result.

The user-facing description (the three code styles, inputs, ``libs``, print capture, errors,
timeouts, isolation and measured costs) is ``docs/python-tool.md``. The tool is organised as:

1. this module: the tool's entry point, loading the source (``code``, ``code_b64``, ``script``)
   and the rest of its configuration, and choosing where the code runs;
2. :mod:`noetl.tools.python_code`: compiling the source and running it, shared by every
   isolation mode (result choice, ``main()`` binding, errors that point at the user's line);
3. :mod:`noetl.tools.python_threads`: a daemon worker thread by default, or the event loop itself
   with ``isolation: inline``;
4. :mod:`noetl.tools.python_processes`: a pool of pre-started worker processes with
   ``isolation: process`` or whenever the call has a timeout (only a process can be stopped while
   it runs CPU-bound code).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from noetl.errors import ToolError
from noetl.tools.base import ToolCall
from noetl.tools.python_code import StepRequest
from noetl.tools.python_processes import _close_pools_at_exit, _detach_process_pool, _run_in_process
from noetl.tools.python_threads import _detach_thread_pools, _pools_lock, _run_in_this_process

ISOLATION_MODES = ("thread", "inline", "process")


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


# --------------------------------------------------------------------------------------------------
# Configuration: the source, `libs` and where the code runs


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


async def shutdown_python_pool() -> None:
    """Stop the worker processes and threads; the next python step starts fresh pools."""
    with _pools_lock:
        processes = _detach_process_pool()
        thread_pools = _detach_thread_pools()
    if processes is not None:
        atexit.unregister(_close_pools_at_exit)
        await asyncio.to_thread(processes.close)
    for pool in thread_pools:
        pool.shutdown()
