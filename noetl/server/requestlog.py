"""Records logged while the server handles a request about an execution carry its id."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from noetl.logsetup import log_context

_EXECUTION_PATH = re.compile(r"^/(?:api/executions|executions|console/(?:stream|actions/cancel))/(\d+)")


def install_request_log_context(app: FastAPI) -> None:
    app.add_middleware(_ExecutionLogContext)


class _ExecutionLogContext:
    """Pure ASGI (no response buffering: event streams pass through untouched)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = _EXECUTION_PATH.match(scope.get("path", "")) if scope.get("type") == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        with log_context(execution_id=match.group(1)):
            await self.app(scope, receive, send)
