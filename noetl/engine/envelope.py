"""The ``output`` envelope: what `set`, arc `when` and task policies see of the task (or step)
that just finished.

``{status: ok|error, data, error, http: {status, headers}}``. ``error`` is always an object
(``{retryable: false}`` on success) and an http task always has ``http``, on success and on error,
so ``output.error.retryable`` and ``output.http.status`` evaluate whatever happened. Built here
only: the runner (task policies, task ``set``) and the engine (step ``set``, arcs, loop ``set``)
both call :func:`envelope`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from noetl.errors import ErrorInfo

_SUCCESS_ERROR: dict[str, Any] = {"retryable": False}


def envelope(ok: bool, result: Any, error: Mapping[str, Any] | None, *, kind: str | None = None) -> dict[str, Any]:
    """The envelope of one finished call; ``kind`` is the tool kind that produced it."""
    http = _http_part(ok, result, error, kind)
    return {
        "status": "ok" if ok else "error",
        "data": result if ok else _answered(http, error),
        "error": dict(_SUCCESS_ERROR) if ok else dict(error or ErrorInfo("error", retryable=False).to_dict()),
        "http": http,
    }


def _answered(http: Mapping[str, Any], error: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """On an http error with an answer (a non-2xx status), `data` is the answer as a success's is
    shaped, `{status_code, headers, data}` (the body also stays `error.data`): NoETL playbooks
    retry on `output.data.status_code in [429, 503]`. Without an answer (timeout, connection) and
    for other tools it is null."""
    if http.get("status") is None:
        return None
    return {"status_code": http["status"], "headers": http.get("headers") or {}, "data": (error or {}).get("data")}


def _http_part(ok: bool, result: Any, error: Mapping[str, Any] | None, kind: str | None) -> dict[str, Any]:
    if not ok and isinstance((error or {}).get("http"), Mapping):
        http = dict((error or {})["http"])
        http.setdefault("headers", {})
        return http
    if kind != "http":
        return {}
    if ok and isinstance(result, Mapping):
        return {"status": result.get("status_code"), "headers": result.get("headers") or {}}
    return {"status": None, "headers": {}}  # no response at all (timeout, connection refused)


def result_kind(tasks: Sequence[Mapping[str, Any]], workbook_kinds: Mapping[str, str]) -> str | None:
    """The tool kind whose result a step (or a task list) ends with: the last task's, looking
    through a workbook call to its entry's last task."""
    if not tasks:
        return None
    last = tasks[-1]
    kind = last.get("kind")
    if kind == "workbook":
        return workbook_kinds.get(str(last.get("name")))
    return str(kind) if kind is not None else None


def workbook_kinds(entries: list[Any]) -> dict[str, str]:
    """For each workbook entry (name -> tasks), the kind its result comes from."""
    return {entry.name: str(entry.tool[-1].kind) for entry in entries if entry.tool}
