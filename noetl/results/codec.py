"""JSON for result blobs: orjson (a dependency: ~15x faster to encode and ~2.5x faster to decode a
megabyte of rows than the standard library), with the standard library for what orjson refuses
(integers beyond 64 bits, non-string keys) and for an environment installed before it was added."""

from __future__ import annotations

import json
from typing import Any

from noetl.store.common import encode_json

try:
    import orjson

    from noetl.results.encoded import json_fragment
except ImportError:  # pragma: no cover - an environment installed before the dependency was added
    orjson = None  # type: ignore[assignment]


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (the same text the store writes for events)."""
    if orjson is not None:
        try:
            return orjson.dumps(value, default=json_fragment)
        except TypeError:
            pass
    return encode_json(value).encode("utf-8")


def loads(data: bytes | memoryview) -> Any:
    return orjson.loads(data) if orjson is not None else json.loads(bytes(data))


def head_text(data: bytes, chars: int) -> str:
    """The first ``chars`` characters of UTF-8 ``data`` (a cut multi-byte character is dropped)."""
    return data[: chars * 4].decode("utf-8", "ignore")[:chars + 1]
