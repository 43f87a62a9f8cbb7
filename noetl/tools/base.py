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

from noetl.errors import ToolError


class ToolServices(Protocol):
    """What the runtime offers to tools that need more than their config."""

    async def run_child_playbook(
        self, *, path: str, payload: dict[str, Any], version: int | None, return_step: str | None, call: ToolCall
    ) -> Any: ...

    async def get_credential(self, name: str) -> dict[str, Any]:
        """The decrypted credential ``{name, type, data}``; raises NotFoundError."""
        ...


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


ToolFunc = Callable[[dict[str, Any], ToolCall], Awaitable[Any]]

# kind -> "module:function". Imported on first use.
_BUILTIN_TOOLS: dict[str, str] = {
    "noop": "noetl.tools.noop:run_noop",
    "python": "noetl.tools.python:run_python",
    "shell": "noetl.tools.shell:run_shell",
    "http": "noetl.tools.http:run_http",
    "postgres": "noetl.tools.postgres:run_postgres",
    "duckdb": "noetl.tools.duckdb:run_duckdb",
    "secrets": "noetl.tools.secrets:run_secrets",
}

# Kinds the engine or runner handles itself rather than a tool function.
RUNNER_KINDS = frozenset({"workbook", "playbook", "sink"})

KNOWN_KINDS = frozenset(_BUILTIN_TOOLS) | RUNNER_KINDS

_loaded: dict[str, ToolFunc] = {}


def get_tool(kind: str) -> ToolFunc:
    """Return the tool function for ``kind``, importing its module on first use."""
    func = _loaded.get(kind)
    if func is not None:
        return func
    target = _BUILTIN_TOOLS.get(kind)
    if target is None:
        raise ToolError(f"unknown tool kind {kind!r}", kind="config")
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ToolError(
            f"tool {kind!r} is not available: {exc}. Install the extra: pip install 'noetl[{kind}]'",
            kind="config",
        ) from exc
    func = getattr(module, attr)
    _loaded[kind] = func
    return func


def register_tool(kind: str, func: ToolFunc) -> None:
    """Register (or replace) a tool function; used by plugins and tests."""
    _loaded[kind] = func
