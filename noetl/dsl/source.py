"""A playbook's text, where it came from, and the position of every value in it (no YAML here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from noetl.errors import PlaybookError

Position = tuple[int, int]  # 1-based line, column
PathKey = tuple[Any, ...]

_UNPARSED: Any = object()


class Source:
    """A parsed YAML document plus the position of each node, keyed by its path.

    A source made by :meth:`unparsed` (a playbook loaded from the cache of validated playbooks)
    parses its text with ``parse`` only when its data or positions are read, and one made by
    :meth:`located_later` finds its positions with ``locate`` only when they are read: a run needs
    them only to point a warning or an error at a line of the file.
    """

    __slots__ = ("_data", "_locate", "_parse_text", "_positions", "base_dir", "file", "text")

    def __init__(self, data: Any, file: str, positions: dict[PathKey, Position] | None = None, text: str = "",
                 base_dir: Path | None = None) -> None:
        self._data = data
        self.file = file
        self._positions = {} if positions is None else positions
        self.text = text
        self.base_dir = base_dir
        self._parse_text: Callable[[str, str], Source] | None = None
        self._locate: Callable[[str, str], dict[PathKey, Position]] | None = None

    @classmethod
    def unparsed(cls, text: str, file: str, base_dir: Path | None, parse: Callable[[str, str], Source]) -> Source:
        source = cls(_UNPARSED, file, text=text, base_dir=base_dir)
        source._positions = _UNPARSED
        source._parse_text = parse
        return source

    @classmethod
    def located_later(cls, data: Any, file: str, text: str,
                      locate: Callable[[str, str], dict[PathKey, Position]]) -> Source:
        source = cls(data, file, text=text)
        source._positions = _UNPARSED
        source._locate = locate
        return source

    @property
    def data(self) -> Any:
        if self._data is _UNPARSED:
            self._parse()
        return self._data

    @property
    def positions(self) -> dict[PathKey, Position]:
        if self._positions is _UNPARSED:
            if self._locate is not None:
                self._positions = self._locate(self.text, self.file)
            else:
                self._parse()
        positions: dict[PathKey, Position] = self._positions
        return positions

    def _parse(self) -> None:
        assert self._parse_text is not None
        parsed = self._parse_text(self.text, self.file)
        self._data, self._positions = parsed.data, parsed.positions

    def where(self, path: PathKey) -> str:
        """``file:line:col`` of the closest known ancestor of ``path``."""
        positions = self.positions
        probe = tuple(path)
        while probe not in positions and probe:
            probe = probe[:-1]
        line, col = positions.get(probe, (1, 1))
        return f"{self.file}:{line}:{col}"


def read_text(ref: str) -> tuple[str, str, Path | None]:
    """The text of a playbook, the name to report it by, and its directory (None for text).

    ``ref`` is YAML text when it looks like a document, else the path of a file.
    """
    if "\n" in ref or ref.lstrip().startswith(("{", "apiVersion")):
        return ref, "<text>", None
    path = Path(ref)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlaybookError(f"{ref}: file not found") from None
    except IsADirectoryError:
        raise PlaybookError(f"{ref}: is a directory, not a playbook file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError(f"{ref}: cannot read: {exc}") from None
    return text, str(ref), path.resolve().parent
