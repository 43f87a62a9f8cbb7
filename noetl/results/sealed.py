"""Big results that hold a secret: stored redacted, with the result as the step returned it sealed
beside them.

A result over ``inline_max_bytes`` goes to the result table (or a file, a bucket) redacted, as
every stored value is. The result as returned goes there too, encrypted with a key of its own (a
fresh Fernet key per result); the reference carries that key in ``_ref.sealed``:

    {"_ref": {"uri": "noetl://result/<redacted>", ..., "sealed": {"uri": "noetl://result/<ciphertext>",
                                                              "key": "<fernet key>", "secrets": [...]}}}

The key is a secret of the execution like any other: the runtime's redactor learns it, so every
event, status document and log shows ``"key": "***"``, and the event that carries the reference
keeps it only in its own sealed copy (runtime/sealing.py: encrypted with the credential key). So the
key is in memory where the execution runs, and in the store only inside that execution's sealed
events: a reference copied out of a status document into another execution opens nothing, and the
stored ciphertext alone tells nothing. ``secrets`` are the secret values inside the result, so that
a process that rebuilds the execution from its log learns them with the key, and redacts a later
step's result that returns one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from noetl.results.codec import dumps, loads

_BLOB_FIELD = "sealed"  # the stored blob: {"sealed": <Fernet token>}

_OPENED_KEPT = 4  # opened results kept for repeated reads (a loop's iterations reading one result)
_OPENED_KEPT_CHARS = 2 * 1024 * 1024  # ... when their ciphertext is at most this long

_opened: OrderedDict[tuple[str, str], Any] = OrderedDict()
_lock = threading.Lock()


def sealed_blob(result: Any) -> tuple[bytes, str]:
    """The stored form of ``result`` (JSON that holds only ciphertext) and the key that opens it."""
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    token = Fernet(key).encrypt(dumps(result))
    return dumps({_BLOB_FIELD: token.decode("ascii")}), key.decode("ascii")


def opened(sealed: dict[str, Any], stored: Any, *, fresh: bool = False) -> Any:
    """The result inside ``stored`` (what the sealed uri holds), opened with the reference's key;
    ``fresh``: a copy no other reader holds. Raises ValueError when it does not open."""
    from cryptography.fernet import Fernet, InvalidToken

    cache_key = (str(sealed["uri"]), str(sealed["key"]))
    if not fresh:
        with _lock:
            if cache_key in _opened:
                _opened.move_to_end(cache_key)
                return _opened[cache_key]
    token = stored.get(_BLOB_FIELD) if isinstance(stored, dict) else None
    if not isinstance(token, str):
        raise ValueError(f"{sealed['uri']} holds no sealed result")
    try:
        value = loads(Fernet(cache_key[1].encode("ascii")).decrypt(token.encode("ascii")))
    except (InvalidToken, ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"{sealed['uri']} does not open with its reference's key") from exc
    if not fresh and len(token) <= _OPENED_KEPT_CHARS:
        with _lock:
            _opened[cache_key] = value
            while len(_opened) > _OPENED_KEPT:
                _opened.popitem(last=False)
    return value
