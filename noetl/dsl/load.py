"""YAML loading that remembers where every value came from (line/column for error messages)."""

from __future__ import annotations

from typing import Any

import yaml

from noetl.dsl.source import PathKey, Position, Source, read_text
from noetl.errors import InputError, PlaybookError
from noetl.safejson import InvalidJson, loads_strict
from noetl.safeyaml import compose_checked, may_have_aliases, new_loader

__all__ = ["PathKey", "Position", "Source", "parse_yaml", "read_source"]


_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(node: yaml.Node, loader: Any, plain_str: bool) -> Any:
    # A string scalar is its text (what the safe loader's str constructor returns): most of a
    # playbook's values and all its keys, for a fraction of construct_object's cost.
    if plain_str and node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
        return node.value
    return loader.construct_object(node, deep=True)


def _construct(
    node: yaml.Node, path: PathKey, positions: dict[PathKey, Position], loader: Any, plain_str: bool
) -> Any:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = _scalar(key_node, loader, plain_str)
            if isinstance(key, bool | int | float) or key is None:
                key = str(key).lower() if isinstance(key, bool) else key
            result[key] = _construct(value_node, (*path, key), positions, loader, plain_str)
            positions[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), positions, loader, plain_str) for i, item in enumerate(node.value)]
    return _scalar(node, loader, plain_str)


def _str_is_plain(loader: Any) -> bool:
    """Whether the loader builds strings with the safe constructor (nobody registered another)."""
    return loader.yaml_constructors.get(_STR_TAG) is yaml.constructor.SafeConstructor.construct_yaml_str


def parse_yaml(text: str, file: str = "<playbook>") -> Source:
    """Parse one YAML document; a syntax error becomes a one-line PlaybookError at file:line:col.

    The node graph is checked before construction (bounded aliases and depth, no recursive
    aliases, plain keys: :mod:`noetl.safeyaml`). A JSON document YAML cannot read (libyaml refuses
    surrogate-pair escapes such as ``"\\ud83d\\udd25"``, which ``json.dumps`` writes) is read as JSON.
    """
    loader = new_loader(text)
    try:
        node = compose_checked(loader, file, PlaybookError, aliases=may_have_aliases(text))
        positions: dict[PathKey, Position] = {}
        data = _construct(node, (), positions, loader, _str_is_plain(loader)) if node is not None else None
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
    text, file, base_dir = read_text(ref)
    source = parse_yaml(text, file)
    source.base_dir = base_dir
    return source
