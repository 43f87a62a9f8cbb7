"""An execution's stored playbook and the steps it has: a step a user names (`noetl logs --step`,
`noetl rerun --from`, their API forms) must be one of them, or the answer is one clear error rather
than an empty one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from noetl.dsl.parse import load_playbook_text
from noetl.errors import InputError, NotFoundError
from noetl.store.base import ExecutionRecord, Store

if TYPE_CHECKING:
    from noetl.dsl.model import Playbook


async def load_execution(store: Store, execution_id: str) -> tuple[ExecutionRecord, Playbook]:
    record = await store.get_execution(execution_id)
    if record is None:
        raise NotFoundError(f"execution {execution_id} not found")
    if not record.playbook:
        raise InputError(f"execution {execution_id} has no stored playbook text to run again")
    playbook = load_playbook_text(record.playbook, f"execution {execution_id}").require()
    return record, playbook


def unknown_step(playbook: Playbook, step: str, field: str) -> str | None:
    """The error for a ``step`` the playbook does not have (None when it has it). ``field`` is how
    the caller named it (``--step``, ``from_step``), so the error speaks the caller's words."""
    if step in playbook.step_map():
        return None
    names = ", ".join(s.step for s in playbook.workflow)
    return f"{field} {step!r}: {playbook.path} has no step of that name (steps: {names})"


async def check_execution_step(store: Store, execution_id: str, step: str, field: str) -> None:
    """Not found: the execution, or ``step`` in its playbook. An execution stored without its
    playbook text (recorded by an older NoETL) is not checked."""
    record = await store.get_execution(execution_id)
    if record is None:
        raise NotFoundError(f"execution {execution_id} not found")
    if not record.playbook:
        return
    playbook = load_playbook_text(record.playbook, f"execution {execution_id}").require()
    problem = unknown_step(playbook, step, field)
    if problem:
        raise NotFoundError(problem)
