"""Errors as JSON: NoETL's exception tree mapped through HTTP_STATUS_BY_ERROR; never a 500 for bad input."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from noetl.errors import HTTP_STATUS_BY_ERROR, NoetlError

log = logging.getLogger("noetl.server")


def status_for(exc: NoetlError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS_BY_ERROR:
            return HTTP_STATUS_BY_ERROR[cls]  # type: ignore[index]
    return 500


def error_body(message: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, "detail": message, "kind": kind, **extra}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NoetlError)
    async def noetl_error(_: Request, exc: NoetlError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.warning("%s: %s", type(exc).__name__, exc)
        return JSONResponse(error_body(str(exc), type(exc).__name__), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(err) for err in exc.errors()]
        return JSONResponse(error_body("; ".join(problems) or "invalid request", "InputError", problems=problems),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), "HTTPError"), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


def _problem(err: Any) -> str:
    if err.get("type") == "json_invalid":  # FastAPI's loc is ("body", <character offset>), its msg "JSON decode error"
        offset = next((part for part in err.get("loc", ()) if isinstance(part, int)), None)
        at = f" at character {offset}" if offset is not None else ""
        return f"body: invalid JSON{at}: {(err.get('ctx') or {}).get('error', 'not JSON')}"
    where = ".".join(str(part) for part in err.get("loc", ()) if part != "body") or "body"
    return f"{where}: {err.get('msg', 'invalid')}"
