"""Every log record of the process passes the same redaction as events and status documents.

Libraries log what they are given: httpx's INFO logger writes each request URL with its query
string (an ``api_key`` in ``params``), drivers echo connection strings, uvicorn logs request lines.
Instead of a filter on each handler (which misses handlers configured later and loggers that do not
propagate), :func:`install_log_redaction` wraps the log record factory, so each record is
redacted once when it is made, whichever logger made it and whichever handler prints it.

The values redacted are :data:`noetl.secrets.PROCESS_SECRETS` (every secret an execution of this
process resolved, plus NoETL's own settings) and passwords in connection strings and URLs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from noetl.secrets import PROCESS_SECRETS, redact_connection_secrets
from noetl.settings import sensitive_setting_values

_installed = False
_install_lock = threading.Lock()
_formatter = logging.Formatter()


def redact_log_text(text: str) -> str:
    return PROCESS_SECRETS.redact_text(redact_connection_secrets(text))


def install_log_redaction() -> None:
    """Redact every log record made from now on in this process (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        PROCESS_SECRETS.add(sensitive_setting_values())
        logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))
        _installed = True


def _redacting(make_record: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        with contextlib.suppress(Exception):  # a record that cannot be formatted is logging's to report
            _redact_record(record)
        return record

    return factory


def _redact_record(record: logging.LogRecord) -> None:
    # The message and its arguments are redacted one by one, keeping the record's shape: filters
    # further on (the access log's query-string filter) still find the arguments where they expect.
    if isinstance(record.msg, str):
        record.msg = redact_log_text(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redacted_argument(arg) for arg in record.args)
    elif isinstance(record.args, dict):
        record.args = {key: _redacted_argument(value) for key, value in record.args.items()}
    if record.exc_info and record.exc_info[0] is not None:
        # Formatters print exc_text when it is set, so the traceback is redacted as well.
        record.exc_text = redact_log_text(_formatter.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact_log_text(record.stack_info)


def _redacted_argument(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return redact_log_text(value) if isinstance(value, str) else value
    # Anything else (URLs, requests, exceptions) is formatted with %s or %r: redact what that prints.
    text = str(value)
    redacted = redact_log_text(text)
    return value if redacted == text else redacted
