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
"""

from __future__ import annotations

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
    http_status = 422


class StoreError(NoetlError):
    http_status = 503


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
        return {"kind": self.kind, "message": self.message, "retryable": self.retryable, **self.details}


HTTP_STATUS_BY_ERROR: dict[type[NoetlError], int] = {
    PlaybookError: 422,
    InputError: 400,
    NotFoundError: 404,
    ForbiddenError: 403,
    TemplateError: 422,
    StoreError: 503,
}
