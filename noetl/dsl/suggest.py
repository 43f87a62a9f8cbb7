"""Did-you-mean suggestions for misspelt keys and names."""

from __future__ import annotations

import difflib


def suggest(key: str, known: set[str] | frozenset[str]) -> str:
    match = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
