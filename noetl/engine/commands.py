"""Commands: the work the engine asks a runtime to do (run a step's tool, once per loop element)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Command:
    """Run the tasks of ``step`` (a single tool is a one-task pipeline) and report the outcome.

    ``command_id`` is deterministic (execution, step, entry, loop index), so a re-delivered command
    and its duplicate report can be recognised without the engine drawing random ids.
    """

    command_id: str
    execution_id: str
    step: str
    tasks: list[dict[str, Any]]
    context: Mapping[str, Any]
    local: dict[str, Any] = field(default_factory=dict)  # iter/loop/input names: with the state, rebuilds `context`
    args: dict[str, Any] = field(default_factory=dict)  # step input (arc overrides merged)
    arc_input: dict[str, Any] = field(default_factory=dict)  # values that beat the tool's own input
    loop_index: int | None = None
    entry: int = 1
    timeout: float | None = None
    attempt: int = 1
    # A frame of a cursor loop: claim rows, then run the tasks on them (see noetl.engine.frames).
    cursor: dict[str, Any] | None = None
    strict: bool = False  # undefined template names are errors
    warnings: list[dict[str, Any]] = field(default_factory=list)  # from rendering its input, reported with it
    # Set by a runtime that queues the command redacted: ``local``, ``args`` and ``arc_input`` as
    # rendered, encrypted (noetl.runtime.sealing.seal_commands).
    sealed: str | None = None
