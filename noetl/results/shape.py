"""What an event records for a tool result: the result itself, or a reference to where it went."""

from __future__ import annotations

from typing import Any

from noetl.results.codec import dumps, head_text
from noetl.results.refs import PREVIEW_CHARS, REF_KEY, SEALED_KEY, is_ref, preview_of
from noetl.results.sealed import sealed_blob
from noetl.results.spec import OutputSpec, apply_select
from noetl.results.storage import ResultStorage


async def shape_result(result: Any, spec: OutputSpec, storage: ResultStorage | None, *, execution_id: str,
                       step: str, redactor: Any = None) -> Any:
    """Apply ``select``; a result over ``inline_max_bytes`` is stored and replaced by its reference,
    with the ``output_select`` fields inline beside it. Secrets are redacted before anything is
    stored, exactly as they are in events; a result that holds one is also stored sealed
    (results/sealed.py), so that later steps read it as it was returned."""
    result = apply_select(result, spec.select)
    if storage is None or _surely_inline(result, spec.inline_max_bytes) or is_ref(result):
        return result
    secret = redactor is not None and redactor.finds_secret(result)
    try:
        data = dumps(redactor.redact(result) if secret else result)
    except (TypeError, ValueError):
        return result  # not JSON: recorded as the event's usual "unstorable result" error
    if len(data) <= spec.inline_max_bytes:
        return result
    where = {"kind": spec.kind, "execution_id": execution_id, "step": step, "ttl_seconds": spec.ttl_seconds}
    ref = await _put(storage, data, preview=preview_of(head_text(data, PREVIEW_CHARS)), **where)
    if secret:
        ref[REF_KEY][SEALED_KEY] = await _sealed_copy(storage, result, redactor, where)
    if isinstance(result, dict):
        for name in spec.keep:
            if name in result and name not in ref:
                ref[name] = result[name]
    return ref


async def _put(storage: ResultStorage, data: bytes, **where: Any) -> dict[str, Any]:
    import hashlib  # here: hashlib loads OpenSSL, and only a result that is stored needs it

    return await storage.put(data, sha256=hashlib.sha256(data).hexdigest(), **where)


async def _sealed_copy(storage: ResultStorage, result: Any, redactor: Any, where: dict[str, Any]) -> dict[str, Any]:
    """Store ``result`` (which holds a secret) sealed beside its redacted copy; the reference's
    ``sealed`` part, whose key the redactor learns, so that it is stored only sealed itself."""
    blob, key = sealed_blob(result)
    stored = await _put(storage, blob, preview="", **where)
    redactor.add(key)
    return {"uri": stored[REF_KEY]["uri"], "key": key, "secrets": sorted(redactor.found_in(result))}


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
