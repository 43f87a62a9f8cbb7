"""Loading of a SQL store's named queries (``queries.sql``) and numbered migrations (``migrations/``),
both shipped as package data beside the backend's code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^(\d+)_(\w+)\.sql$")


def load_queries(package: str) -> dict[str, str]:
    """Every ``-- name: xyz`` block of the package's ``queries.sql``."""
    text = (_package_dir(package) / "queries.sql").read_text(encoding="utf-8")
    return parse_named_queries(text)


def parse_named_queries(text: str) -> dict[str, str]:
    parts = _NAME_LINE.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    named: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in named:
            raise ValueError(f"query {name!r} is defined twice in queries.sql")
        named[name] = body.strip()
    return named


def migration_files(package: str) -> list[tuple[int, str, str]]:
    """``(version, name, script)`` of each ``<version>_<name>.sql`` in the package's ``migrations/``,
    in version order."""
    folder = _package_dir(package) / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration[0])
    return found


def _package_dir(package: str) -> Path:
    # The directory itself: NoETL is installed as files (never zipped), and importlib.resources would
    # cost every `noetl run` the import of zipfile and its readers.
    module_file = importlib.import_module(package).__file__
    assert module_file is not None, f"{package} has no files"
    return Path(module_file).parent
