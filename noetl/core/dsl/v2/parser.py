"""``from noetl.core.dsl.v2.parser import validate_playbook_file`` (seed 002): validation through
:func:`noetl.dsl.parse.load_playbook`, the one loader."""

from __future__ import annotations

from pathlib import Path

from noetl.dsl.model import Playbook
from noetl.dsl.parse import load_playbook


def validate_playbook_file(path: str | Path, *, strict: bool = False) -> Playbook:
    """The checked playbook of ``path``; raises :class:`noetl.errors.PlaybookError` (one line
    naming file:line) when it is invalid, as ``noetl validate`` reports it."""
    return load_playbook(str(path)).require(strict=strict)


__all__ = ["validate_playbook_file"]
