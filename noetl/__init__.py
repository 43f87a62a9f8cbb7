"""NoETL: event-sourced workflow automation.

Public Python API (kept import-light so `noetl run` starts fast):

- :func:`noetl.run` runs a playbook locally and returns its status document.
- :func:`noetl.validate` returns the list of problems found in a playbook.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def run(playbook: str, payload: dict[str, Any] | None = None, merge: bool = False, *,
        strict: bool = False) -> dict[str, Any]:
    """Run a playbook (a file path or YAML text) on the local runtime; return the status document.

    Templates are lenient about undefined names (each use is listed in the document's `warnings`);
    ``strict=True`` makes an undefined name an error.
    """
    from noetl.api import run_playbook

    return run_playbook(playbook, payload=payload, merge=merge, strict=strict)


def validate(playbook: str) -> list[Any]:
    """Validate a playbook (a file path or YAML text); return its problems (errors and warnings)."""
    from noetl.api import validate_playbook

    return validate_playbook(playbook)
