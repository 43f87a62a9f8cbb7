"""The tool protocol and the registry.

A tool receives its config with string fields already rendered (python ``code`` is never
rendered) and a :class:`ToolCall` describing where it runs. It returns a JSON-serialisable result
or raises :class:`noetl.errors.ToolError`. Tools are looked up lazily so that heavy client
libraries (httpx, psycopg, duckdb) are only imported by the playbooks that use them.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from noetl.dsl.kinds import TOOL_KINDS, ToolKind
from noetl.errors import ToolError


class ToolServices(Protocol):
    """What the runtime offers to tools that need more than their config."""

    async def run_child_playbook(
        self, *, path: str, payload: dict[str, Any], version: int | None, return_step: str | None, call: ToolCall
    ) -> Any: ...

    async def get_credential(self, name: str) -> dict[str, Any]:
        """The decrypted credential ``{name, type, data}``; raises NotFoundError."""
        ...


class OutputSink(Protocol):
    """Where a tool writes its output as it comes (``stream``: stdout or stderr); the runtime
    stores it as the execution's logs while the call runs (noetl.runtime.logstream)."""

    def write(self, stream: str, text: str) -> None: ...


@dataclass(slots=True)
class ToolCall:
    """Everything about one tool invocation except its config."""

    execution_id: str
    step: str
    task: str  # task name inside the step's pipeline (the step name for a single tool)
    context: Mapping[str, Any]  # the render context (section 3 of the spec)
    args: dict[str, Any] = field(default_factory=dict)  # inputs injected into the tool (step input + tool input)
    playbook_dir: Path | None = None
    timeout: float | None = None
    services: ToolServices | None = None
    logs: list[str] = field(default_factory=list)  # captured output (e.g. python print), stored in the event
    secrets: set[str] = field(default_factory=set)  # resolved secret values, to redact
    output: OutputSink | None = None  # streamed logs; None outside a runtime
    # The safe variables of the process environment (noetl.tools.environment), read once by the
    # runner rather than at every call; None: read them at the call.
    environment: Mapping[str, str] | None = None


ToolFunc = Callable[[dict[str, Any], ToolCall], Awaitable[Any]]

# The registry is noetl.dsl.kinds.TOOL_KINDS (shared with the validator); implementations load lazily.
_loaded: dict[str, ToolFunc] = {}


def get_tool(kind: str) -> ToolFunc:
    """Return the tool function for ``kind``, importing its module on first use."""
    func = _loaded.get(kind)
    if func is not None:
        return func
    spec = TOOL_KINDS.get(kind)
    if spec is None or spec.runner is None:
        raise ToolError(f"unknown tool kind {kind!r}", kind="config")
    func = _import_target(spec.runner, spec)
    _loaded[kind] = func
    return func


def _import_target(target: str, spec: ToolKind) -> Any:
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" Install the extra: pip install -e '.[{spec.extra}]'" if spec.extra else ""
        raise ToolError(f"tool {spec.kind!r} is not available: {exc}.{hint}", kind="config") from exc
    return getattr(module, attr)


async def shutdown_tools() -> None:
    """Close pooled clients and worker processes that tools started (only tools that were imported)."""
    import sys

    for spec in TOOL_KINDS.values():
        if spec.closer is None:
            continue
        module_name, attr = spec.closer.split(":")
        module = sys.modules.get(module_name)
        closer = getattr(module, attr, None) if module else None
        if closer is not None:
            await closer()


def register_tool(kind: str, func: ToolFunc) -> None:
    """Register (or replace) a tool function; used by plugins and tests."""
    _loaded[kind] = func
