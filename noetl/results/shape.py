"""What an event records for a tool result: the result itself, or a reference to where it went."""

from __future__ import annotations

from typing import Any

from noetl.results.codec import dumps, head_text
from noetl.results.refs import PREVIEW_CHARS, is_ref, preview_of
from noetl.results.spec import OutputSpec, apply_select
from noetl.results.storage import ResultStorage


async def shape_result(result: Any, spec: OutputSpec, storage: ResultStorage | None, *, execution_id: str,
                       step: str, redactor: Any = None) -> Any:
    """Apply ``select``; a result over ``inline_max_bytes`` is stored and replaced by its reference,
    with the ``output_select`` fields inline beside it. Secrets are redacted before anything is
    stored, exactly as they are in events."""
    result = apply_select(result, spec.select)
    if storage is None or is_ref(result):
        return result
    try:
        data = dumps(redactor.redact(result) if redactor is not None else result)
    except (TypeError, ValueError):
        return result  # not JSON: recorded as the event's usual "unstorable result" error
    if len(data) <= spec.inline_max_bytes:
        return result
    import hashlib  # here: hashlib loads OpenSSL, and only a result that is stored needs it

    ref = await storage.put(data, sha256=hashlib.sha256(data).hexdigest(), kind=spec.kind,
                            execution_id=execution_id, step=step, ttl_seconds=spec.ttl_seconds,
                            preview=preview_of(head_text(data, PREVIEW_CHARS)))
    if isinstance(result, dict):
        for name in spec.keep:
            if name in result and name not in ref:
                ref[name] = result[name]
    return ref
