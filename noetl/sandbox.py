"""Sandbox roots: the directories a playbook's file paths may point into.

Playbooks name files — ``script:`` sources, ``kind: playbook`` files, duckdb and sink databases —
and a path like ``../../etc/passwd`` (or an absolute one, or a symbolic link leading out) could
otherwise reach any file the process can read or write. Confinement is on

- when ``NOETL_SANDBOX_ROOT`` is set (directories separated by ``:``), on every runtime;
- always in a server or worker process (:func:`require_confinement`), whose roots are
  ``NOETL_SANDBOX_ROOT`` or, when unset, the working directory.

NoETL's own data directory (``$NOETL_HOME/data``, where default duckdb files live) and the
directory of the playbook file being run are roots as well. Paths are resolved (``..`` and
symbolic links) before they are compared.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from noetl.errors import ToolError
from noetl.settings import load_settings

_always = False


def require_confinement() -> None:
    """Confine paths in this process even without ``NOETL_SANDBOX_ROOT`` (servers and workers)."""
    global _always
    _always = True


def sandbox_roots(extra: Iterable[Path | None] = ()) -> list[Path] | None:
    """The roots in force, or None when paths are not confined."""
    settings = load_settings()
    configured = list(settings.sandbox_roots)
    if not configured and not _always:
        return None
    roots = configured or [Path.cwd()]
    roots.append(settings.data_dir)
    roots.extend(path for path in extra if path is not None)
    return [_resolved(root) for root in roots]


def confine(path: Path, *, what: str, extra_roots: Iterable[Path | None] = ()) -> Path:
    """``path`` (resolved) when it lies inside a sandbox root; a ``sandbox`` ToolError otherwise."""
    roots = sandbox_roots(extra_roots)
    if roots is None:
        return path
    resolved = _resolved(path)
    if any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return resolved
    raise ToolError(
        f"{what} {str(path)!r} is outside the sandbox roots ({os.pathsep.join(str(r) for r in roots)})",
        kind="sandbox",
    )


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))
