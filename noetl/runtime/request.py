"""What starting an execution needs, shared by both runtimes and the child-playbook call."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noetl.engine.events import Event

if TYPE_CHECKING:
    from noetl.dsl.model import Playbook

# How deep child playbooks may nest (a parent calling a child calling a grandchild ...).
MAX_CHILD_DEPTH = 16


@dataclass(slots=True)
class RunRequest:
    """What to run and how: the playbook, its payload, and where the execution stands among its parents."""

    playbook: Playbook
    playbook_text: str = ""
    playbook_dir: Path | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    merge: bool = False
    strict: bool = False  # undefined template names are errors
    parent_execution_id: str | None = None
    execution_id: str | None = None
    depth: int = 0
    chain: tuple[str, ...] = ()  # playbook paths from the root, to detect call cycles
    meta: dict[str, Any] = field(default_factory=dict)  # added to playbook.initialized (rerun origin, schedule)
    entry_step: str | None = None  # a rerun from a later step starts there
    entry_input: dict[str, Any] = field(default_factory=dict)  # ... with the arc input it had
    reused: list[Event] = field(default_factory=list)  # step.reused events of a rerun from a step
    resume: list[Event] | None = None  # the log of the execution to continue in place (noetl resume)
    # Values this execution's log redacts besides its own secrets: a child's, those its parent knows
    # (a parent's keychain value passed in the payload); a rerun's, those its original's log redacted.
    secrets: frozenset[str] = frozenset()


@dataclass(slots=True)
class StartOptions:
    """How a distributed execution starts when it is not a plain run (Engine.start)."""

    meta: dict[str, Any] = field(default_factory=dict)  # a schedule's fire time, a rerun's origin
    entry_step: str | None = None
    entry_input: dict[str, Any] = field(default_factory=dict)
    reused: list[Event] = field(default_factory=list)
    secrets: frozenset[str] = frozenset()  # a rerun's: the values its original's log redacted
