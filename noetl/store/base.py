"""The one store protocol every backend implements.

Backends: :mod:`noetl.store.memory` (tests, ephemeral runs), :mod:`noetl.store.sqlite` (embedded
default under ``$NOETL_HOME``) and the PostgreSQL backend of the distributed runtime. All of them are
held to the same conformance suite (``tests/integration/store_conformance.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from noetl.engine.events import Event

if TYPE_CHECKING:
    from noetl.store.records import (
        CatalogEntry,
        CredentialRecord,
        FireRecord,
        HookRecord,
        ScheduleRecord,
        TriggerRecord,
    )

# Records a run never builds live in noetl.store.records; they are exported here too, and their
# module is imported the first time one of them is asked for (``from noetl.store.base import ...``).
_RECORDS = frozenset({"CatalogEntry", "CredentialRecord", "FireRecord", "HookRecord", "ScheduleRecord",
                      "TriggerRecord"})


def __getattr__(name: str) -> Any:
    if name not in _RECORDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from noetl.store import records

    return getattr(records, name)


@dataclass(slots=True)
class ExecutionRecord:
    """Summary row of one execution (the event log stays the source of truth)."""

    execution_id: str
    path: str
    status: str = "running"  # running | completed | failed | cancelled
    parent_execution_id: str | None = None
    playbook: str = ""  # YAML text the execution runs (so it can be resumed / replayed)
    payload: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    started_at: str = ""
    ended_at: str | None = None
    # Who runs it: ``host:pid:process-start`` of a local run (see noetl.runtime.owner), else "".
    owner: str = ""


@dataclass(slots=True, frozen=True)
class ExecutionState:
    """What a watcher polls for: the row's status and the id of its last event."""

    status: str
    last_event_id: int
    ended_at: str | None = None


@dataclass(slots=True)
class ResultRecord:
    """A result kept outside the event log (events hold a ``_ref`` to it), or a named artifact."""

    result_id: str
    data: bytes  # the result as compact JSON text (UTF-8)
    sha256: str
    size: int
    execution_id: str | None = None
    step: str | None = None
    name: str | None = None  # artifacts stored with `kind: artifact, action: put`
    created_at: str = ""
    expires_at: str | None = None  # from `output.store.ttl`; None keeps it until pruned


@dataclass(slots=True)
class LogRecord:
    """One line of output a call printed (SPEC section 17), stored while the call still runs.

    ``log_id`` is given by the store, increasing in the order lines are appended."""

    execution_id: str
    step: str
    line: str
    stream: str = "stdout"  # stdout | stderr
    loop_index: int | None = None
    created_at: str = ""
    log_id: int = 0


class Store(Protocol):
    """Async storage for executions, events, the catalog and credentials."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # executions and events -------------------------------------------------------------
    async def create_execution(self, record: ExecutionRecord, events: list[Event]) -> list[Event]:
        """Insert the execution row and its first events atomically; return the stamped events."""
        ...

    async def append_events(
        self, execution_id: str, events: list[Event], *, update: dict[str, Any] | None = None
    ) -> list[Event]:
        """Append events in one transaction, assigning ``event_id`` (monotonic per execution).

        ``update`` optionally changes execution-row fields (status, result, error, ended_at) in the
        same transaction. Events must already carry ``created_at``. Events for an execution that has
        ended (completed, failed, cancelled) are refused with ``ExecutionEnded``, checked in the same
        transaction: nothing is recorded after ``execution.cancelled`` (another process's cancel), so
        a replay of the log ends where the execution did. ``transition_execution`` (resume) is the
        one way to record more.
        """
        ...

    async def list_events(
        self, execution_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[Event]: ...

    async def list_event_heads(
        self, execution_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[Event]:
        """As ``list_events``, but a loop call's event (``call.done``/``call.error`` with
        ``meta.loop_index``) comes without its result and with only the meta a fold of the whole log
        needs (``noetl.store.common.event_head``): what the console's page of a 10,000-item loop reads."""
        ...

    async def transition_execution(
        self, execution_id: str, events: list[Event], *, from_statuses: tuple[str, ...],
        update: dict[str, Any], owner: str | None = None, expect_owner: str | None = None,
    ) -> list[Event] | None:
        """Append ``events`` and apply ``update`` (and set ``owner`` when given) in one transaction,
        only if the execution's status is one of ``from_statuses`` (and its owner is
        ``expect_owner`` when given); otherwise change nothing and return None. Resuming an
        execution and recording an abandoned one use it, so two processes never both succeed."""
        ...

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None: ...

    async def get_execution_state(self, execution_id: str) -> ExecutionState | None:
        """Its status, last event id and end: what a watcher or a live console page polls for,
        without reading the playbook, payload and result."""
        ...

    async def list_executions(
        self, *, status: str | None = None, parent_execution_id: str | None = None, path: str | None = None,
        started_since: str | None = None, ended_since: str | None = None, limit: int = 100, offset: int = 0,
    ) -> list[ExecutionRecord]:
        """Executions, newest first. ``path`` matches a substring of the playbook path (any case);
        ``started_since`` / ``ended_since`` are ISO instants (inclusive bounds)."""
        ...

    # catalog ---------------------------------------------------------------------------
    async def register_catalog(self, *, path: str, kind: str, content: str, name: str = "") -> CatalogEntry:
        """Store a new version of ``path`` (versions start at 1 and increase by one)."""
        ...

    async def get_catalog(self, path: str, version: int | None = None) -> CatalogEntry | None:
        """The given version, or the latest when ``version`` is None."""
        ...

    async def list_catalog(self, *, kind: str | None = None) -> list[CatalogEntry]:
        """Latest version of every path."""
        ...

    # schedules ---------------------------------------------------------------------------
    async def put_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        """Create or replace the schedule ``record.name``; a replaced one keeps its cursor and
        created_at."""
        ...

    async def get_schedule(self, name: str) -> ScheduleRecord | None: ...

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        ...

    async def update_schedule(self, name: str, *, enabled: bool | None = None, cursor: str | None = None) -> bool:
        """Change the given fields; False if there is no such schedule."""
        ...

    async def delete_schedule(self, name: str) -> bool:
        """Delete the schedule and its fire records; False if there was none."""
        ...

    async def claim_fire(self, fire: FireRecord) -> bool:
        """Record a fire time; False (and nothing changed) if it was recorded before, by anyone."""
        ...

    async def start_queued_fire(self, schedule: str, scheduled_for: str, execution_id: str) -> bool:
        """Mark a queued fire time started with ``execution_id``; False if it was not queued."""
        ...

    async def list_fires(self, schedule: str, *, status: str | None = None, limit: int = 100) -> list[FireRecord]:
        """Fire records of a schedule, latest fire time first (``status`` filters)."""
        ...

    # hooks -------------------------------------------------------------------------------
    async def put_hook(self, record: HookRecord) -> HookRecord:
        """Create or replace the hook ``record.name`` (a replaced one keeps its created_at)."""
        ...

    async def get_hook(self, name: str) -> HookRecord | None: ...

    async def list_hooks(self) -> list[HookRecord]:
        """Every hook, by name."""
        ...

    async def delete_hook(self, name: str) -> bool:
        """Delete the hook and its delivery records; False if there was none."""
        ...

    async def claim_delivery(self, hook: str, delivery_id: str) -> bool:
        """Record a delivery id of a hook; False if it was recorded before (a replay)."""
        ...

    # completion triggers -----------------------------------------------------------------
    async def put_trigger(self, record: TriggerRecord) -> TriggerRecord:
        """Create or replace the trigger ``record.name`` (a replaced one keeps its created_at)."""
        ...

    async def list_triggers(self) -> list[TriggerRecord]:
        """Every trigger, by name."""
        ...

    async def delete_trigger(self, name: str) -> bool:
        """Delete the trigger and its fire records; False if there was none."""
        ...

    async def claim_trigger_fire(self, trigger: str, source_execution_id: str, execution_id: str) -> bool:
        """Record that ``trigger`` fired for ``source_execution_id`` (starting ``execution_id``);
        False if it fired for that execution before."""
        ...

    async def try_scheduler_lock(self) -> bool:
        """Become the one active scheduler of this store (PostgreSQL: an advisory lock held by a
        session of this store until ``close``); False if another process holds it."""
        ...

    # credentials (data is an encrypted blob) ------------------------------------------
    async def put_credential(self, record: CredentialRecord) -> None: ...

    async def get_credential(self, name: str) -> CredentialRecord | None: ...

    async def list_credentials(self) -> list[CredentialRecord]: ...

    async def delete_credential(self, name: str) -> bool: ...

    # results stored by reference (SPEC section 19) ------------------------------------
    async def put_result(self, record: ResultRecord) -> None:
        """Store a result blob (``created_at`` is set by the store when empty)."""
        ...

    async def get_result(self, result_id: str) -> ResultRecord | None: ...

    async def find_result(self, name: str) -> ResultRecord | None:
        """The newest result stored under ``name`` (artifacts)."""
        ...

    # logs streamed while calls run (SPEC section 17) ---------------------------------
    async def append_logs(self, records: list[LogRecord]) -> None:
        """Store lines (of any executions) in one transaction, in order; ``log_id`` is assigned."""
        ...

    async def list_logs(self, execution_id: str, *, after_id: int = 0, step: str | None = None,
                        limit: int | None = None) -> list[LogRecord]:
        """The execution's stored lines after ``after_id``, in the order they were appended."""
        ...

    async def delete_executions(self, *, ended_before: str) -> list[str]:
        """Delete the executions that ended (any status but ``running``) before ``ended_before``
        (ISO 8601 UTC), with their events, commands and logs; return their ids."""
        ...

    async def delete_results(self, *, created_before: str | None = None, expired_by: str | None = None) -> int:
        """Delete results created before ``created_before`` or whose ``expires_at`` is at or before
        ``expired_by`` (ISO 8601 UTC); return how many were deleted."""
        ...
