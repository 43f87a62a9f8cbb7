"""Where a step's error is in the playbook file.

A python traceback counts lines from the start of the step's ``code`` block; the user edits the
playbook, so the line that matters is the block's line in the file: the line of the ``code:`` key,
plus the code line (the block starts on the next line for ``code: |``, on the same line for an
inline string). A template error names the ``field`` of the step it failed in (``input.x``);
its line is that field's line (see :mod:`noetl.dsl.locate`).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from noetl.dsl.load import PathKey, Source, parse_yaml
from noetl.dsl.locate import position
from noetl.errors import ErrorInfo, PlaybookError

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


def with_playbook_line(playbook_text: str, step: str, error: dict[str, Any]) -> dict[str, Any]:
    """``error`` with the playbook file's line it points at, when that can be found (the same on
    every runtime; the file's name is not, so displays add it)."""
    if not playbook_text or not ("line" in error or "field" in error) or "playbook_line" in error:
        return error
    line = code_locator(playbook_text).line(step, error)
    return ErrorInfo.from_dict(error).at_line(line).to_dict() if line else error


def error_location(playbook_text: str, step: str, error: dict[str, Any], file: str = "playbook") -> str | None:
    """``file:LINE`` of a step error that names a code line, else None."""
    line = error.get("playbook_line")
    if isinstance(line, int) and not isinstance(line, bool) and line > 0:
        return f"{file}:{line}"  # found when the error was recorded (the runner's CodeLocator)
    return CodeLocator(playbook_text, file).locate(step, error)


@functools.lru_cache(maxsize=32)
def code_locator(playbook_text: str) -> CodeLocator:
    """One locator per playbook text: the workers of a loop whose iterations fail parse it once."""
    return CodeLocator(playbook_text, "playbook")


class CodeLocator:
    """Points step errors at the playbook file's line; the text is parsed once, on the first error."""

    def __init__(self, playbook_text: str, file: str) -> None:
        self.text, self.file = playbook_text, file
        self._source: Source | None = None
        self._unparsable = not playbook_text

    def locate(self, step: str, error: dict[str, Any]) -> str | None:
        """``file:LINE`` of an error that names a line of the step's code, else None."""
        line = self.line(step, error)
        return f"{self.file}:{line}" if line else None

    def line(self, step: str, error: dict[str, Any]) -> int | None:
        """The playbook's line of an error that names a line of the step's code or a field of the
        step (a template error), else None."""
        code_line, field = error.get("line"), error.get("field")
        if not isinstance(code_line, int) or isinstance(code_line, bool) or code_line < 1:
            code_line = None
        if code_line is None and not isinstance(field, str):
            return None
        source = self._parsed()
        if source is None:
            return None
        if code_line is None:
            found = position(source, step, field)
            return found[0] if found else None
        task = error.get("task") if isinstance(error.get("task"), str) else None
        return file_line(source, step, code_line, task)

    def _parsed(self) -> Source | None:
        if self._source is None and not self._unparsable:
            try:
                self._source = parse_yaml(self.text, self.file, located=True)
            except PlaybookError:
                self._unparsable = True
        return self._source
