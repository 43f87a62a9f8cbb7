"""No import circles inside the `noetl` package.

Every `import` counts, including the ones inside functions: a lazy import that points back at its
importer is still a circle, only hidden until run time. Imports under `if TYPE_CHECKING:` do not run
and are left out.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import noetl

PACKAGE_ROOT = Path(noetl.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    names: set[str] = set()
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if _is_type_checking_block(node):
            skipped.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE_ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = _imported_names(tree, module, path.name == "__init__.py")
        # A package's __init__ importing its own submodules is how packages expose names, not a circle.
        graph[module] = {name for name in imported
                         if name in files and name != module and not name.startswith(module + ".")}
    return graph


def test_the_package_has_no_import_cycles() -> None:
    graph = _import_graph()
    assert len(graph) > 50, "the scan found too few modules to be meaningful"
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError("import cycle: " + " -> ".join(exc.args[1])) from None


def test_the_cycle_check_sees_lazy_imports() -> None:
    tree = ast.parse("def f():\n    from noetl.cli.app import cli\n")
    assert "noetl.cli.app" in _imported_names(tree, "noetl.cli.running", False)
