"""The engine and the DSL stay pure: no store, runtime, tools, server or driver imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "noetl"
FORBIDDEN = ("noetl.store", "noetl.runtime", "noetl.tools", "noetl.server", "noetl.cli", "psycopg", "httpx",
             "duckdb", "sqlite3", "asyncio", "subprocess", "socket", "time", "random", "uuid")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "engine").glob("*.py")) + sorted((PACKAGE / "dsl").glob("*.py")),
                         ids=lambda p: p.name)
def test_pure_modules_import_nothing_impure(path: Path) -> None:
    bad = {name for name in imports_of(path) if name.startswith(FORBIDDEN)}
    assert not bad, f"{path.name} imports {sorted(bad)}"
