"""The ``unquoted`` template filter: marks a value as shell code for the ``shell`` tool.

Values rendered into a ``shell`` command are shell-quoted (see :mod:`noetl.tools.shellquote`);
``{{ value | unquoted }}`` pastes one as written, for a value that is meant to be shell code.
Anywhere else the filter is harmless: the result is the value's text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from noetl.results.refs import without_sealing


class ShellCode(str):
    """A rendered value marked ``| unquoted``: pasted into a shell command as written."""

    __slots__ = ()


def shell_text(value: Any) -> str:
    """How a rendered value is written into a command: booleans as shells spell them, data as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):  # a reference without its sealed part, as every text shows it
        return json.dumps(without_sealing(value), default=str)
    return str(value)


def unquoted(value: Any) -> ShellCode:
    return value if isinstance(value, ShellCode) else ShellCode(shell_text(value))
