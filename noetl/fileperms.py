"""Files and directories NoETL creates for itself are owner-only: files 0600, directories 0700.

The local store holds the event log (results of every step) and the encrypted credentials, the key
file decrypts them; neither is anyone else's business on a shared machine. Existing files and
directories of NoETL's own are tightened when they are opened (an older version created them
0644 / 0755); directories NoETL did not create (``/tmp`` for a store placed there) are left alone.
"""

from __future__ import annotations

import os
import stat
from contextlib import suppress
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def private_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) owner-only, or tighten it when it already exists."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    for created in missing:
        _chmod(created, DIRECTORY_MODE)  # mkdir applies the umask, and parents get the default mode
    _chmod(path, DIRECTORY_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only unless it exists; tighten an existing one."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    _chmod(path, FILE_MODE)


def _chmod(path: Path, mode: int) -> None:
    # Only our own files: a read-only store opened by another user, or a shared directory, stays as is.
    with suppress(OSError):
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
            os.chmod(path, mode)


def write_private(path: Path, data: bytes, *more: bytes) -> None:
    """Write ``data`` (then each of ``more``, not joined to it first: a result can be big) to
    ``path``, a new file being owner-only (a step's result is as private as the store it comes from);
    an existing file is overwritten and keeps its mode, which its owner chose."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        for part in more:
            file.write(part)
