"""Which commands can run again after a crash without anyone noticing: the local runtime may store
their decisions in groups (docs/performance.md, "Steps without side effects are stored in groups").

A command qualifies when each of its tasks is a ``noop`` or a thread-mode or inline ``python`` step
whose code is brief (noetl.tools.python_brief): it only reads its inputs, builds values and prints,
so running it a second time changes nothing outside the run. Anything else (another tool, ``libs``,
``env``, ``credentials``, ``script``, a policy, ``set``, ``output``, a time limit, a loop iteration
or a cursor frame) does not: its decision is stored before the next tool runs, as always.
"""

from __future__ import annotations

from typing import Any

from noetl.engine.commands import Command
from noetl.tools.python_brief import runs_briefly

# Keys of a task that cannot add an effect to a noop or to brief python code.
_NOOP_KEYS = frozenset({"kind", "name", "desc", "description", "input", "result", "data"})
_PYTHON_KEYS = frozenset({"kind", "name", "desc", "description", "input", "code", "isolation"})


def effect_free(command: Command) -> bool:
    """True when running ``command`` again changes nothing but the run's own events and log lines.

    Loop iterations and cursor frames never qualify: a loop's aggregate reads its iterations'
    reports back from the store, so they are stored at once."""
    if command.loop_index is not None or command.cursor is not None or command.timeout:
        return False
    return all(_task_effect_free(task, command) for task in command.tasks)


def _task_effect_free(task: dict[str, Any], command: Command) -> bool:
    kind = task.get("kind", "noop")
    if kind == "noop":
        return task.keys() <= _NOOP_KEYS
    if kind != "python" or not task.keys() <= _PYTHON_KEYS or task.get("isolation", "thread") not in ("thread", "inline"):
        return False
    code = task.get("code")
    if not isinstance(code, str):
        return False
    own_input = task.get("input") or {}
    if not command.args and not command.arc_input and not own_input:
        return runs_briefly(code, ())
    return runs_briefly(code, {*command.args, *command.arc_input, *(own_input if isinstance(own_input, dict) else ())})
