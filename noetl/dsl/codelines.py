"""Where a python step's error is in the playbook file.

A python traceback counts lines from the start of the step's ``code`` block; the user edits the
playbook, so the line that matters is the block's line in the file: the line of the ``code:`` key,
plus the code line (the block starts on the next line for ``code: |``, on the same line for an
inline string).
"""

from __future__ import annotations

import re
from typing import Any

from noetl.dsl.load import PathKey, Source, parse_yaml
from noetl.errors import PlaybookError

_BLOCK = re.compile(r":\s*[|>][-+0-9]*\s*(#.*)?$")


def code_key_path(data: Any, step: str, task: str | None = None) -> PathKey | None:
    """The YAML path of the ``code`` key of ``step`` (of its task named ``task`` in a pipeline)."""
    workflow = data.get("workflow") if isinstance(data, dict) else None
    for index, entry in enumerate(workflow or []):
        if isinstance(entry, dict) and entry.get("step") == step:
            return _find_code(entry, ("workflow", index), task)
    return None


def _find_code(node: Any, path: PathKey, task: str | None) -> PathKey | None:
    if isinstance(node, dict):
        if "code" in node and isinstance(node["code"], str) and (task is None or node.get("name") in (task, None)):
            return (*path, "code")
        for key, value in node.items():
            if key in ("next", "loop", "input", "set"):
                continue
            if (found := _find_code(value, (*path, key), task)) is not None:
                return found
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if (found := _find_code(item, (*path, index), task)) is not None:
                return found
    return None


def file_line(source: Source, step: str, code_line: int, task: str | None = None) -> int | None:
    """The playbook file's line of line ``code_line`` (1-based) of ``step``'s code."""
    path = code_key_path(source.data, step, task)
    if path is None or path not in source.positions:
        return None
    key_line = source.positions[path][0]
    lines = source.text.splitlines()
    block = 0 < key_line <= len(lines) and bool(_BLOCK.search(lines[key_line - 1]))
    return key_line + code_line if block else key_line + code_line - 1


def error_location(playbook_text: str, step: str, error: dict[str, Any], file: str = "playbook") -> str | None:
    """``file:LINE`` of a step error that names a code line, else None."""
    code_line = error.get("line")
    if not isinstance(code_line, int) or isinstance(code_line, bool) or code_line < 1 or not playbook_text:
        return None
    try:
        source = parse_yaml(playbook_text, file)
    except PlaybookError:
        return None
    line = file_line(source, step, code_line, error.get("task") if isinstance(error.get("task"), str) else None)
    return f"{file}:{line}" if line else None
