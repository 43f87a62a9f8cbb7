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
    if storage is None or _surely_inline(result, spec.inline_max_bytes) or is_ref(result):
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


_SMALL_SCALAR_BYTES = 24  # the longest JSON of a bool, null, float or 64-bit integer ("-1.2345678901234567e-308")
_INT64 = 1 << 63


def _surely_inline(result: Any, limit: int) -> bool:
    """A result whose JSON cannot exceed ``limit`` bytes, known without encoding it (most steps
    return a scalar or a short text). Redaction never lengthens a text: a secret has at least
    as many characters as the mask that replaces it."""
    kind = type(result)
    if kind is str:
        return 6 * len(result) + 2 <= limit  # each character at most six bytes (a \uXXXX escape)
    if kind is int:
        return -_INT64 <= result < _INT64 and limit >= _SMALL_SCALAR_BYTES
    return (kind is bool or kind is float or result is None) and limit >= _SMALL_SCALAR_BYTES
