"""YAML loading that remembers where every value came from (line/column for error messages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from noetl.errors import InputError, PlaybookError
from noetl.safejson import InvalidJson, loads_strict
from noetl.safeyaml import compose_checked, new_loader

Position = tuple[int, int]  # 1-based line, column
PathKey = tuple[Any, ...]


@dataclass(slots=True)
class Source:
    """A parsed YAML document plus the position of each node, keyed by its path."""

    data: Any
    file: str
    positions: dict[PathKey, Position] = field(default_factory=dict)
    text: str = ""
    base_dir: Path | None = None

    def where(self, path: PathKey) -> str:
        """``file:line:col`` of the closest known ancestor of ``path``."""
        probe = tuple(path)
        while probe not in self.positions and probe:
            probe = probe[:-1]
        line, col = self.positions.get(probe, (1, 1))
        return f"{self.file}:{line}:{col}"


def _construct(node: yaml.Node, path: PathKey, positions: dict[PathKey, Position], loader: Any) -> Any:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, bool | int | float) or key is None:
                key = str(key).lower() if isinstance(key, bool) else key
            result[key] = _construct(value_node, (*path, key), positions, loader)
            positions[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), positions, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str = "<playbook>") -> Source:
    """Parse one YAML document; a syntax error becomes a one-line PlaybookError at file:line:col.

    The node graph is checked before construction (bounded aliases and depth, no recursive
    aliases, plain keys: :mod:`noetl.safeyaml`). A JSON document YAML cannot read (libyaml refuses
    surrogate-pair escapes such as ``"\\ud83d\\udd25"``, which ``json.dumps`` writes) is read as JSON.
    """
    loader = new_loader(text)
    try:
        node = compose_checked(loader, file, PlaybookError)
        positions: dict[PathKey, Position] = {}
        data = _construct(node, (), positions, loader) if node is not None else None
    except PlaybookError:
        if text.lstrip().startswith(("{", "[")):
            return Source(data=_json_document(text, file), file=file, text=text)
        raise
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{file}: invalid YAML: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()
    return Source(data=data, file=file, positions=positions, text=text)


def _json_document(text: str, file: str) -> Any:
    try:
        return loads_strict(text, file)
    except InvalidJson as exc:
        raise PlaybookError(str(exc)) from None
    except InputError as exc:
        raise PlaybookError(str(exc)) from None


def read_source(ref: str) -> Source:
    """Load a playbook from a file path, or from YAML text when ``ref`` looks like a document."""
    if "\n" in ref or ref.lstrip().startswith(("{", "apiVersion")):
        return parse_yaml(ref, "<text>")
    path = Path(ref)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlaybookError(f"{ref}: file not found") from None
    except IsADirectoryError:
        raise PlaybookError(f"{ref}: is a directory, not a playbook file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError(f"{ref}: cannot read: {exc}") from None
    source = parse_yaml(text, str(ref))
    source.base_dir = path.resolve().parent
    return source
