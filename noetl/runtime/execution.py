"""What both runtimes do around the engine for one execution, written once.

The local runtime (runtime/local.py) and the distributed decision core (runtime/distributed.py)
record the same events the same way: every event of a decision gets its time and passes the
execution's redactor before it is stored; the execution row gets its final status, result and
error (redacted too) with the decision that finishes it; a cancel is one ``execution.cancelled``
event, whoever asks for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from noetl.clock import iso
from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.engine.state import ExecutionState
from noetl.errors import ErrorInfo
from noetl.runtime.sealing import SEALED_RESULT, seal, unsealed


class Redactor(Protocol):
    def redact(self, value: Any) -> Any: ...

    def finds_secret(self, value: Any) -> bool: ...


_MICROSECONDS = tuple(timedelta(microseconds=offset) for offset in range(16))  # a decision's usual events


def stamp(events: list[Event], now: datetime, redactor: Redactor | None) -> list[Event]:
    """Give a decision's events their time and redact them (in place; returns ``events``).

    Events of one decision get times one microsecond apart, in order, so that ordering the log by
    ``created_at`` (as users' SQL does) gives the order of ``event_id``.
    """
    # A redactor that knows no secret yet (most executions) returns every value unchanged.
    active = redactor if redactor is not None and bool(redactor) else None
    for offset, event in enumerate(events):
        event.created_at = iso(now + _MICROSECONDS[offset] if offset < len(_MICROSECONDS)
                               else now + timedelta(microseconds=offset))
        if active is not None:
            _redact_event(event, active)
    return events


def _redact_event(event: Event, redactor: Redactor) -> None:
    """Redact ``event`` in place, sealing what its redaction hides. Most events hold no secret: a
    search finds that without building a redacted copy of the result to compare."""
    result = redactor.redact(event.result) if redactor.finds_secret(event.result) else event.result
    meta = redactor.redact(event.meta) if redactor.finds_secret(event.meta) else event.meta
    sealed = seal(event.result if result is not event.result else None, event.meta if meta is not event.meta else None)
    event.result, event.meta = result, meta
    if sealed is not None:
        event.meta = {**meta, SEALED_RESULT: sealed}
    if redactor.finds_secret(event.error):
        event.error = redactor.redact(event.error)


def execution_result(state: ExecutionState) -> Any:
    """The execution's result as the row stores it: only a completed execution has one."""
    return state.result if state.status == "completed" else None


def final_update(state: ExecutionState, redactor: Redactor | None, ended_at: str) -> dict[str, Any] | None:
    """The execution row's final columns once ``state`` has finished (None while it runs)."""
    if not state.finished:
        return None
    redact = redactor.redact if redactor is not None else (lambda value: value)
    return {"status": state.status, "result": redact(execution_result(state)), "error": redact(state.error),
            "ended_at": ended_at}


def cancel_event(execution_id: str, reason: str = "cancelled by request", *, created_at: str = "") -> Event:
    return Event(execution_id, ev.EXECUTION_CANCELLED, status="cancelled",
                 error=ErrorInfo("cancelled", reason).to_dict(), created_at=created_at)


def stored_payload(payload: dict[str, Any], redactor: Redactor | None) -> dict[str, Any]:
    """The payload as the execution row stores it: redacted, as the log is. A child's payload often
    holds its parent's keychain values, and the row is what `noetl query` reads. The payload as
    given is in the log's ``playbook.initialized``, sealed with its workload (runtime/sealing.py):
    :func:`started_payload` reads it back."""
    if redactor is None or not bool(redactor):
        return payload
    redacted = redactor.redact(payload)
    return redacted if isinstance(redacted, dict) else payload


def started_payload(stored: dict[str, Any], initialized: Event | None) -> dict[str, Any]:
    """The payload an execution started with, from its row's redacted copy and the log's first event
    (``playbook.initialized``, unsealed when it can be: else the row's copy is what there is)."""
    if initialized is None or initialized.event_type != ev.PLAYBOOK_INITIALIZED or not payload_was_redacted(stored):
        return stored
    workload = unsealed(initialized).result
    return payload_from_workload(stored, workload) if isinstance(workload, dict) else stored


def payload_was_redacted(payload: Any) -> bool:
    from noetl.secrets import REDACTED, secret_strings

    return any(REDACTED in text for text in secret_strings(payload))


def payload_from_workload(payload: Any, workload: Any) -> Any:
    """``payload`` with each string leaf read from ``workload``, the workload it was merged into.

    Every payload leaf is at the same place in that workload (merge_payload, shallow or deep, lets the
    payload win). With the workload the log stored (redacted by the execution's redactor, which knows
    the secrets, such as a parent's keychain value passed to a child, that no reader of the row
    does) this is the payload as the log redacted it; with the workload unsealed, the payload as
    given."""
    if isinstance(payload, str):
        return workload if isinstance(workload, str) else payload
    if isinstance(payload, dict) and isinstance(workload, dict):
        return {key: payload_from_workload(value, workload.get(key)) for key, value in payload.items()}
    if isinstance(payload, list) and isinstance(workload, list) and len(payload) == len(workload):
        return [payload_from_workload(item, logged) for item, logged in zip(payload, workload, strict=True)]
    return payload
