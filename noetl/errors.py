"""One exception tree for NoETL.

    NoetlError
    ├── PlaybookError          invalid playbook (YAML, schema, semantic checks)   -> exit 2 / HTTP 422
    ├── InputError             bad arguments or payload                           -> exit 2 / HTTP 400
    ├── NotFoundError          unknown execution, catalog path, credential        -> exit 2 / HTTP 404
    ├── ForbiddenError         a request NoETL refuses to carry out (SQL endpoint) -> exit 2 / HTTP 403
    ├── TemplateError          a template failed to render (names template + variable)
    ├── StoreError             the store could not complete an operation          -> HTTP 503
    ├── WorkerError            a worker's heartbeat, listener or reaper died      -> exit 1
    └── ToolError              a tool failed (carries kind, message, retryable)

Driver errors are wrapped at the boundary with ``raise ... from exc``.

:class:`ErrorInfo` is the error as events, outcomes and the API carry it (``{kind, message,
retryable, ...}``): every error object NoETL records is built through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class NoetlError(Exception):
    """Root of every error NoETL raises on purpose."""

    http_status = 500

    def __init__(self, message: str, **attrs: Any) -> None:
        super().__init__(message)
        self.message = message
        for key, value in attrs.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message


class PlaybookError(NoetlError):
    http_status = 422


class InputError(NoetlError):
    http_status = 400


class NotFoundError(NoetlError):
    http_status = 404


class ForbiddenError(NoetlError):
    http_status = 403


class TemplateError(NoetlError):
    """``field``, when known, is the field of the failing step the template is in (``input.x``)."""

    http_status = 422
    field: str | None = None


class StoreError(NoetlError):
    http_status = 503


class ConnectionRefused(StoreError):
    """PostgreSQL answered and refused the connection for a reason that waiting does not change
    (a wrong password, no such role or database, no pg_hba.conf entry)."""


class ExecutionEnded(NoetlError):
    """Events for an execution that has already ended (completed, failed or cancelled, perhaps by
    another process): the store records nothing after an execution's end (``status`` is the end)."""

    http_status = 409

    def __init__(self, execution_id: str, status: str) -> None:
        super().__init__(f"execution {execution_id} has ended ({status}): nothing is recorded after its end",
                         execution_id=execution_id, status=status)
        self.execution_id, self.status = execution_id, status


class WorkerError(NoetlError):
    """A worker stopped because one of its own side tasks (heartbeat, listener, reaper) died."""


class ToolError(NoetlError):
    """A tool failed. ``kind`` classifies it (e.g. ``ZeroDivisionError``, ``timeout``, ``http``)."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "error",
        retryable: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return ErrorInfo.from_exception(self).to_dict()


HTTP_STATUS_BY_ERROR: dict[type[NoetlError], int] = {
    PlaybookError: 422,
    InputError: 400,
    NotFoundError: 404,
    ForbiddenError: 403,
    TemplateError: 422,
    StoreError: 503,
}


_NAMED_KEYS = frozenset({"kind", "message", "retryable"})
_LINE_KEY = "playbook_line"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One recorded error: what a ``call.error`` event, a failed step or execution, an
    ``output.error`` envelope and the API's error objects carry.

    ``to_dict()`` is the shape stored in events: ``kind`` first, then ``message`` and ``retryable``
    when they are set (a field left ``None`` is absent, as in the errors recorded before this type
    existed, e.g. a cancellation has no ``retryable``), then ``details`` (a tool's extra keys:
    ``line`` of the step's code, ``traceback``, ``http``, ``data``, ``notes``, ...), and last
    ``playbook_line``: ``line``, the playbook file's line the error points at, when it is known.
    """

    kind: str
    message: str | None = None
    retryable: bool | None = None
    line: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """A ToolError keeps its kind, retryable and details; a TemplateError is kind ``template``
        (with the ``field`` of the step it failed in, when known);
        any other NoETL error is kind ``error``; an exception NoETL did not raise on purpose (a bug in
        a tool) is named by its class: kind ``ZeroDivisionError``, message ``"ZeroDivisionError: ..."``."""
        if isinstance(exc, ToolError):
            return cls.from_dict({"kind": exc.kind, "message": exc.message, "retryable": exc.retryable,
                                  **exc.details})
        if isinstance(exc, TemplateError):
            return cls.template(exc)
        if isinstance(exc, NoetlError):
            return cls("error", str(exc), False)
        name = type(exc).__name__
        return cls(name, f"{name}: {exc}", False)

    @classmethod
    def template(cls, exc: NoetlError, kind: str = "template") -> ErrorInfo:
        """A template (or a rendered value) that failed: the field of its step, when known, is kept."""
        field_name = getattr(exc, "field", None)
        return cls(kind, str(exc), False, details={"field": field_name} if field_name else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorInfo:
        """An error read back from an event (the inverse of :meth:`to_dict`)."""
        line = data.get(_LINE_KEY)
        has_line = isinstance(line, int) and not isinstance(line, bool)
        message, retryable = data.get("message"), data.get("retryable")
        return cls(
            kind=str(data.get("kind") or "error"),
            message=None if message is None else str(message),
            retryable=None if retryable is None else bool(retryable),
            line=line if has_line else None,
            details={k: v for k, v in data.items() if k not in _NAMED_KEYS and not (k == _LINE_KEY and has_line)},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.message is not None:
            out["message"] = self.message
        if self.retryable is not None:
            out["retryable"] = self.retryable
        out.update(self.details)
        if self.line is not None:
            out[_LINE_KEY] = self.line
        return out

    def at_line(self, line: int) -> ErrorInfo:
        """The same error, pointing at line ``line`` of the playbook file."""
        return replace(self, line=line)

    def with_note(self, note: str) -> ErrorInfo:
        """The same error with ``note`` appended to its ``notes`` (what else went wrong while handling it)."""
        return replace(self, details={**self.details, "notes": [*self.details.get("notes", []), note]})

    def to_exception(self, default_message: str = "failed") -> ToolError:
        """A ToolError that records as this error again (an inner pipeline's failure re-raised)."""
        details = {**self.details, _LINE_KEY: self.line} if self.line is not None else dict(self.details)
        return ToolError(self.message if self.message is not None else default_message, kind=self.kind,
                         retryable=bool(self.retryable), details=details)
