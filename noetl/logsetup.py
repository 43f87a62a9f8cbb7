"""Logging of the server and the workers: one line per record, as text or JSON (``--log-format``),
each carrying the ``execution_id``, ``step`` and ``command_id`` it concerns.

The ids live in context variables: a worker binds them around each command it runs and the server
around each request that names an execution, so every record logged meanwhile — by NoETL or by a
library — carries them without being passed along. The server's access log (uvicorn's) is on,
without query strings: a query string can hold a token or a key.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
CONTEXT_FIELDS = ("execution_id", "step", "command_id")

# A tuple of (name, value) pairs: an immutable default, and each binding makes a new one.
_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar("noetl_log_context",
                                                                                      default=())


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Records logged inside carry these fields (None values are left out)."""
    merged = {**dict(_context.get()), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (``record.execution_id`` ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = dict(_context.get())
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, bound.get(name))
        return True


class AccessPathFilter(logging.Filter):
    """uvicorn's access lines without the query string (``GET /api/x?token=... ``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS
                       if getattr(record, name, None) is not None)
        return f"{text} [{ids}]" if ids else text


def configure_logging(level: str = "info", log_format: str = "text") -> None:
    """One handler on stderr for every logger (uvicorn's included), in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessPathFilter) for f in access.filters):
        access.addFilter(AccessPathFilter())
    # httpx logs every request URL at INFO, query string included: only its warnings are worth a line.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
