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


def _key(node: yaml.Node, loader: Any, plain_str: bool) -> Any:
    key = _scalar(node, loader, plain_str)
    if isinstance(key, bool | int | float) or key is None:
        key = str(key).lower() if isinstance(key, bool) else key
    return key


def _construct(node: yaml.Node, loader: Any, plain_str: bool) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        # _scalar's string case written out for keys and values: it is most of a playbook's
        # nodes, and a call per node was a fifth of construction.
        return {(key.value if plain_str and key.tag == _STR_TAG and isinstance(key, yaml.ScalarNode)
                 else _key(key, loader, plain_str)):
                (value.value if plain_str and value.tag == _STR_TAG and isinstance(value, yaml.ScalarNode)
                 else _construct(value, loader, plain_str))
                for key, value in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loader, plain_str) for item in node.value]
    return _scalar(node, loader, plain_str)


def _locate(node: yaml.Node, path: PathKey, positions: dict[PathKey, Position], loader: Any, plain_str: bool) -> None:
    """The position of ``node`` and everything under it, keyed by path (keys as :func:`_construct`
    makes them)."""
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key_path = (*path, _key(key_node, loader, plain_str))
            _locate(value_node, key_path, positions, loader, plain_str)
            positions[key_path] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _locate(item, (*path, i), positions, loader, plain_str)


def _str_is_plain(loader: Any) -> bool:
    """Whether the loader builds strings with the safe constructor (nobody registered another)."""
    return loader.yaml_constructors.get(_STR_TAG) is yaml.constructor.SafeConstructor.construct_yaml_str


def parse_yaml(text: str, file: str = "<playbook>", *, located: bool = False) -> Source:
    """Parse one YAML document; a syntax error becomes a one-line PlaybookError at file:line:col.

    The positions of its values are found when first read (parsing the text again: only a
    warning or an error needs them), or at once with ``located``.

    The node graph is checked before construction (bounded aliases and depth, no recursive
    aliases, plain keys: :mod:`noetl.safeyaml`). A JSON document YAML cannot read (libyaml refuses
    surrogate-pair escapes such as ``"\\ud83d\\udd25"``, which ``json.dumps`` writes) is read as JSON.
    """
    loader = new_loader(text)
    try:
        node = compose_checked(loader, file, PlaybookError, aliases=may_have_aliases(text))
        plain_str = _str_is_plain(loader)
        data = _construct(node, loader, plain_str) if node is not None else None
        positions: dict[PathKey, Position] = {}
        if located and node is not None:
            _locate(node, (), positions, loader, plain_str)
    except PlaybookError:
        if text.lstrip().startswith(("{", "[")):
            return Source(data=_json_document(text, file), file=file, text=text)
        raise
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{file}: invalid YAML: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()
    if located:
        return Source(data=data, file=file, positions=positions, text=text)
    return Source.located_later(data, file, text, _positions)


def _positions(text: str, file: str) -> dict[PathKey, Position]:
    return parse_yaml(text, file, located=True).positions


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
