"""The runner's side of results by reference: shape a finished task's or step's result, and hand a
tool the full data behind any reference in its inputs."""

from __future__ import annotations

import asyncio
from typing import Any

from noetl.dsl.render_budget import NeedsThread, inline_loads
from noetl.results.refs import REF_KEY, is_ref, materialize, sealed_part
from noetl.results.shape import shape_result
from noetl.results.spec import output_spec

# Tools that take references as they are (they read or store results themselves).
REF_AWARE_KINDS = frozenset({"artifact"})


async def recorded_result(services: Any, result: Any, output: Any, *, execution_id: str, step: str,
                          secrets: set[str], where: str) -> Any:
    """What the event will record for ``result`` under the ``output:`` block ``output``."""
    spec = output_spec(output, where=where)
    redactor = getattr(services, "redactor", None)
    if redactor is not None and secrets:
        redactor.add(secrets)
    recorded = await shape_result(result, spec, getattr(services, "results", None), execution_id=execution_id,
                                  step=step, redactor=redactor)
    sealed = sealed_part(recorded.get(REF_KEY)) if is_ref(recorded) else None
    if sealed is not None:
        secrets.add(sealed["key"])  # the process that records the report redacts it too (a server)
    return recorded


async def store_big_results(services: Any, outcome: Any, output: Any, command: Any) -> None:
    """Shape what a finished command reports: the step result under the step's ``output:`` block,
    and every named task result the report carries (``step.results.<task>``) under the defaults."""
    common = {"execution_id": command.execution_id, "step": command.step, "secrets": outcome.secrets}
    outcome.result = await recorded_result(services, outcome.result, output, where=f"step {command.step!r} output",
                                           **common)
    for name, value in outcome.tasks.items():
        outcome.tasks[name] = await recorded_result(services, value, None, where=f"task {name!r} output", **common)


def tool_inputs(kind: str, value: Any) -> Any:
    """A tool's config or inputs with references replaced by the results they stand for."""
    return value if kind in REF_AWARE_KINDS else materialize(value)


async def tool_inputs_off_loop(kind: str, value: Any) -> Any:
    """:func:`tool_inputs` from the event loop: where a big result has to be decoded, that happens
    on a thread, so the loop's heartbeats and other commands go on meanwhile."""
    try:
        with inline_loads():
            return tool_inputs(kind, value)
    except NeedsThread:
        return await asyncio.to_thread(tool_inputs, kind, value)
