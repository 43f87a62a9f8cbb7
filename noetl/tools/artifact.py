"""`kind: artifact`: read a result stored by reference, or store a named one (SPEC section 19).

```yaml
tool: {kind: artifact, action: get, input: {result_ref: "{{ big_step._ref }}"}}   # -> {data: <full result>}
tool: {kind: artifact, action: get, name: daily_report}                          # the newest under that name
tool: {kind: artifact, action: put, name: daily_report, data: "{{ summary }}"}    # or path: ./report.json
```
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from noetl.errors import NotFoundError, ToolError
from noetl.results.codec import dumps, head_text
from noetl.results.refs import PREVIEW_CHARS, preview_of, ref_uri
from noetl.results.storage import DB_PREFIX, ResultStorage
from noetl.sandbox import confine
from noetl.tools.base import ToolCall

ACTIONS = ("get", "put")


async def run_artifact(config: dict[str, Any], call: ToolCall) -> Any:
    action = config.get("action", "get")
    if action not in ACTIONS:
        raise ToolError(f"artifact action {action!r} is not one of {', '.join(ACTIONS)}", kind="config")
    storage = getattr(call.services, "results", None)
    if not isinstance(storage, ResultStorage):
        raise ToolError("artifact needs a runtime with result storage", kind="config")
    if action == "get":
        return {"data": await _get(config, call, storage)}
    return await _put(config, call, storage)


def _field(config: dict[str, Any], call: ToolCall, name: str) -> Any:
    return config[name] if config.get(name) is not None else call.args.get(name)


async def _get(config: dict[str, Any], call: ToolCall, storage: ResultStorage) -> Any:
    ref, name = _field(config, call, "result_ref"), _field(config, call, "name")
    if ref is not None:
        uri = ref_uri(ref)
        if uri is None:
            raise ToolError("artifact get: result_ref must be a reference ({{ step._ref }}) or its uri",
                            kind="config")
    elif name:
        record = await storage.store.find_result(str(name))
        if record is None:
            raise ToolError(f"artifact get: no artifact named {name!r}", kind="not_found")
        uri = DB_PREFIX + record.result_id
    else:
        raise ToolError("artifact get needs input.result_ref or name", kind="config")
    try:
        return await storage.fetch(uri)
    except NotFoundError as exc:
        raise ToolError(str(exc), kind="not_found") from None


async def _put(config: dict[str, Any], call: ToolCall, storage: ResultStorage) -> Any:
    name = _field(config, call, "name")
    if not name:
        raise ToolError("artifact put needs a name", kind="config")
    path = config.get("path")
    data = _read_file(str(path), call.playbook_dir) if path else _field(config, call, "data")
    redactor = getattr(call.services, "redactor", None)
    raw = dumps(redactor.redact(data) if redactor is not None else data)
    ref = await storage.put(raw, sha256=hashlib.sha256(raw).hexdigest(), kind="db", name=str(name),
                            execution_id=call.execution_id, step=call.step,
                            preview=preview_of(head_text(raw, PREVIEW_CHARS)))
    return {"name": str(name), **ref}


def _read_file(path: str, playbook_dir: Path | None) -> Any:
    """A JSON file is stored as its value, any other file as its text."""
    candidate = Path(path)
    if not candidate.is_absolute() and playbook_dir is not None and (playbook_dir / candidate).exists():
        candidate = playbook_dir / candidate
    candidate = confine(candidate, what="artifact file", extra_roots=[playbook_dir])
    try:
        text = candidate.read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolError(f"artifact put: cannot read {path}: {exc.strerror}", kind="config") from None
    if candidate.suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ToolError(f"artifact put: {path} is not JSON: {exc}", kind="config") from None
    return text
