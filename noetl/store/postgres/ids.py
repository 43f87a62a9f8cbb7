"""Execution ids as PostgreSQL BIGINT.

Ids made by :mod:`noetl.ids` are canonical decimal numbers and are stored as themselves, so the
seeds' ``WHERE execution_id = 123`` works. Any other text (test ids, ids imported from elsewhere)
maps to a negative 63-bit hash, which can never collide with a generated id; the execution row keeps
the original text in ``execution_key`` so reads return it unchanged.
"""

from __future__ import annotations

from hashlib import blake2b

_MAX_BIGINT = 2**63 - 1


def is_numeric_id(execution_id: str) -> bool:
    return execution_id.isascii() and execution_id.isdigit() and str(int(execution_id)) == execution_id \
        and int(execution_id) <= _MAX_BIGINT


def db_id(execution_id: str) -> int:
    if is_numeric_id(execution_id):
        return int(execution_id)
    digest = int.from_bytes(blake2b(execution_id.encode("utf-8"), digest_size=8).digest(), "big")
    return -((digest & _MAX_BIGINT) or 1)


def db_key(execution_id: str | None) -> str | None:
    """The text to keep beside the number (None when the number says it all)."""
    if execution_id is None or is_numeric_id(execution_id):
        return None
    return execution_id


def optional_db_id(execution_id: str | None) -> int | None:
    return None if execution_id is None else db_id(execution_id)
