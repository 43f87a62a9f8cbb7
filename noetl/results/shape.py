"""What an event records for a tool result: the result itself, or a reference to where it went."""

from __future__ import annotations

import asyncio
from typing import Any

from noetl.results import layout
from noetl.results.codec import dumps, head_text
from noetl.results.encoded import EncodedList, plain_lists
from noetl.results.refs import LAYOUT_KEY, PREVIEW_CHARS, REF_KEY, SEALED_KEY, is_ref, preview_of
from noetl.results.sealed import sealed_blob
from noetl.results.spec import OutputSpec, apply_select
from noetl.results.storage import ResultStorage


async def shape_result(result: Any, spec: OutputSpec, storage: ResultStorage | None, *, execution_id: str,
                       step: str, redactor: Any = None) -> Any:
    """Apply ``select``; a result over ``inline_max_bytes`` is stored and replaced by its reference,
    with the ``output_select`` fields inline beside it. Secrets are redacted before anything is
    stored, exactly as they are in events; a result that holds one is also stored sealed
    (results/sealed.py), so that later steps read it as it was returned."""
    if storage is None or spec.select:
        result = plain_lists(result)  # rows kept as JSON (a big postgres result) read as plain lists
    result = apply_select(result, spec.select)
    if storage is None or _surely_inline(result, spec.inline_max_bytes) or is_ref(result):
        return result
    try:
        if _looks_big(result):  # encoded on a thread: the event loop's heartbeats and other commands go on
            secret, data, node = await asyncio.to_thread(_encoded, result, redactor, mapped=True)
        else:
            secret, data, node = _encoded(result, redactor, mapped=False)
    except (TypeError, ValueError):
        return result  # not JSON: recorded as the event's usual "unstorable result" error
    if sum(len(part) for part in data) <= spec.inline_max_bytes:
        return plain_lists(result)
    where = {"kind": spec.kind, "execution_id": execution_id, "step": step, "ttl_seconds": spec.ttl_seconds}
    ref = await _put(storage, data, preview=preview_of(head_text(_head(data), PREVIEW_CHARS)), **where)
    del data
    if node is not None:
        stored = await _put(storage, dumps({"root": node}), preview="", **where)
        ref[REF_KEY][LAYOUT_KEY] = stored[REF_KEY]["uri"]
    if secret:
        ref[REF_KEY][SEALED_KEY] = await _sealed_copy(storage, result, redactor, where)
    if isinstance(result, dict):
        for name in spec.keep:
            if name in result and name not in ref:
                ref[name] = plain_lists(result[name])
    return ref


def _encoded(result: Any, redactor: Any, *, mapped: bool) -> tuple[bool, list[bytes], Any]:
    """(whether it holds a secret, the JSON to store in pieces, its layout or None; ``mapped``: try to
    map it). A result with a secret is stored redacted and read whole through its sealed copy: no
    layout. The pieces are joined only where they are stored (SQLite writes them one by one)."""
    if redactor is not None and redactor.finds_secret(result):
        return True, [dumps(redactor.redact(result))], None
    parts, node = layout.encode(result) if mapped else ([], None)
    if not parts:
        return False, [dumps(result)], None
    return False, parts, node if sum(len(part) for part in parts) >= LAYOUT_MIN_BYTES else None


def _head(parts: list[bytes]) -> bytes:
    """The first bytes of the JSON (enough for its preview)."""
    head = b""
    for part in parts:
        head += part[:PREVIEW_CHARS * 4 - len(head)]
        if len(head) >= PREVIEW_CHARS * 4:
            break
    return head


# Results smaller than this get no layout: read whole, they stay in the storage's cache of decoded
# results (or decode in a few milliseconds), which a read by pieces would only slow down.
LAYOUT_MIN_BYTES = 4 * 1024 * 1024
_BIG_BYTES = 1 << 20
_BIG_WEIGHT = 20_000  # about this many values (or 64-character runs of text): encoded on a thread


def _looks_big(result: Any) -> bool:
    return _weight(result, 0) > _BIG_WEIGHT


def _weight(value: Any, depth: int) -> int:
    """A rough count of the values in ``value`` (a list by its first item), bounded in effort."""
    kind = type(value)
    if kind is str:
        return len(value) // 64
    if depth > 3:
        return 1
    if kind is dict:
        total = len(value)
        for item in value.values():
            total += _weight(item, depth + 1)
            if total > _BIG_WEIGHT:
                break
        return total
    if kind is list and value:
        return len(value) * (1 + _weight(value[0], depth + 1))
    if kind is EncodedList:
        return len(value) * 4
    return 1


async def _put(storage: ResultStorage, data: bytes | list[bytes], **where: Any) -> dict[str, Any]:
    import hashlib  # here: hashlib loads OpenSSL, and only a result that is stored needs it

    parts = [data] if isinstance(data, bytes) else data

    def digest() -> str:
        hashed = hashlib.sha256()
        for part in parts:
            hashed.update(part)
        return hashed.hexdigest()

    # Hashing 100 MB takes a few tenths of a second: on a thread (hashlib lets go of the interpreter).
    sha256 = await asyncio.to_thread(digest) if sum(len(part) for part in parts) > _BIG_BYTES else digest()
    if not isinstance(storage, ResultStorage):  # a remote worker's uploader: one body
        parts = [b"".join(parts)]
    return await storage.put(parts if len(parts) > 1 else parts[0], sha256=sha256, **where)


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
