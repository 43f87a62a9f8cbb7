"""Validated playbooks kept on disk, so that a playbook run again is not checked and validated again.

An entry is what loading one text under one file name found: its problems (warnings and notes; a
playbook with errors is never cached), the canonical document and the validated model: each model
object's field values, extra fields and set fields, with the layout of the model classes (which
fields hold models) derived from their annotations when the entry is written. A lookup rebuilds
either plain records of the models (:mod:`noetl.dsl.records`: a run, which then needs neither
pydantic nor the model classes) or the models themselves with ``model_construct``, which neither
validates nor builds pydantic validators. The model classes of :mod:`noetl.dsl.model` stay the one
description of the DSL.

The key is the BLAKE2b digest (32 bytes) of the text, the file name and a fingerprint of the code loading depends on
(NoETL's version and modules, the interpreter, the directories libraries are installed in), so a
changed text, file name, NoETL or library never finds an old entry. Entries are written whole
(a temporary file renamed over the entry) and owner-only; the oldest are removed beyond
``MAX_ENTRIES``; a playbook longer than ``MAX_TEXT_CHARS`` is not cached. An entry that cannot be
read is a miss, and deleting the directory is always safe.
"""

from __future__ import annotations

import json
import os
import sys
import types
import typing
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noetl.dsl.problems import Problem
from noetl.dsl.records import Record, record
from noetl.fileperms import private_directory

if TYPE_CHECKING:
    from pydantic import BaseModel

    from noetl.dsl.model import Playbook

MAX_ENTRIES = 256
# What the cache saves is the fixed cost of a short run: the imports and pydantic validators that
# checking and validating need. Per step, rebuilding a playbook with model_construct (Python code)
# costs nearly as much as validating it, and writing the entry costs a first run about half as much
# again, so a long playbook (about 700 steps and more) is not kept: it would cost more than it saves.
MAX_TEXT_CHARS = 64 * 1024
_FORMAT = 2  # of an entry; part of the key


def applies(text: str) -> bool:
    return len(text) <= MAX_TEXT_CHARS


def entry_key(text: str, file: str) -> str:
    digest = _blake2b()
    for part in (_code_fingerprint(), file, text):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def lookup(directory: Path, key: str, *, records: bool = False
           ) -> tuple[Playbook, list[Problem], dict[str, Any]] | None:
    """The playbook, problems and canonical document of entry ``key``, or None (a miss). With
    ``records``, the playbook is a plain record of the model (:mod:`noetl.dsl.records`), which has
    the model's fields and behaviour and imports pydantic only for pydantic's own API."""
    try:
        entry = json.loads((directory / f"{key}.json").read_bytes())
        playbook = _rebuild(entry["layout"], entry["playbook"])
        problems = [Problem(*fields) for fields in entry["problems"]]
        canonical = entry["canonical"]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if type(playbook).__name__ != "Playbook" or not isinstance(canonical, dict):
        return None
    # A record stands in for the model it has every field and method of (see noetl.dsl.records).
    return (playbook if records else playbook.as_model()), problems, canonical  # type: ignore[return-value]


def save(directory: Path, key: str, playbook: Playbook, problems: list[Problem], canonical: dict[str, Any]) -> None:
    """Keep what loading found, unless JSON cannot carry it exactly (dates, non-string keys, ...)."""
    layout: dict[str, dict[str, bool]] = {}
    entry = {"playbook": _flatten(playbook, layout), "layout": layout,
             "problems": [[p.severity, p.where, p.message, p.code] for p in problems], "canonical": canonical}
    try:
        text = json.dumps(entry, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return
    if json.loads(text) != entry:
        return  # a tuple, an integer key or the like would come back different
    with suppress(OSError):  # a read-only or full home only costs the next run the validation
        _write(directory, key, text)


def _flatten(model: BaseModel, layout: dict[str, dict[str, bool]]) -> list[Any]:
    """``[class name, fields, extra fields, set fields]``, nested models likewise; ``layout`` gets,
    for each model class met, its fields that hold models (name -> a list of them?)."""
    name = type(model).__name__
    nested = layout.setdefault(name, {field: many for field, (many, _cls) in _model_fields(type(model)).items()})
    fields = {}
    for field, value in model.__dict__.items():
        if field in nested and value is not None:
            value = [_flatten(v, layout) for v in value] if nested[field] else _flatten(value, layout)
        fields[field] = value
    return [name, fields, model.__pydantic_extra__, sorted(model.model_fields_set)]


def _rebuild(layout: dict[str, dict[str, bool]], flat: list[Any]) -> Record:
    name, fields, extra, fields_set = flat
    for field, many in layout[name].items():
        value = fields.get(field)
        if value is not None:
            fields[field] = [_rebuild(layout, v) for v in value] if many else _rebuild(layout, value)
    if not isinstance(fields, dict) or not (extra is None or isinstance(extra, dict)):
        raise TypeError(f"{name}: a damaged entry")
    return record(name, fields, extra, fields_set)


def _blake2b() -> Any:
    try:  # the standard library's own BLAKE2, without importing hashlib (which loads OpenSSL: 11 M instructions)
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover - an interpreter built without it
        from hashlib import blake2b
    return blake2b(digest_size=32)


@cache
def _model_fields(cls: type[BaseModel]) -> dict[str, tuple[bool, type[BaseModel]]]:
    """The fields of ``cls`` that hold models: name -> (a list of them?, the model class)."""
    fields = {}
    for name, info in cls.__pydantic_fields__.items():
        nested = _nested_model(info.annotation)
        if nested is not None:
            fields[name] = nested
    return fields


def _nested_model(annotation: Any) -> tuple[bool, type[BaseModel]] | None:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return False, annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [_nested_model(arg) for arg in args if arg is not type(None)]
        if models == [None] * len(models):
            return None
        if len(models) == 1:
            return models[0]
    elif origin is list and len(args) == 1:
        inner = _nested_model(args[0])
        if inner is None:
            return None
        if inner[0] is False:
            return True, inner[1]
    elif not any(_mentions_model(arg) for arg in args):
        return None
    raise TypeError(f"the playbook cache cannot rebuild a field of type {annotation!r}")


def _mentions_model(annotation: Any) -> bool:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_mentions_model(arg) for arg in typing.get_args(annotation))


def _write(directory: Path, key: str, text: str) -> None:
    import tempfile  # here: a run that finds its entry writes none

    private_directory(directory)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".entry-", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, directory / f"{key}.json")
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    _prune(directory)


def _prune(directory: Path) -> None:
    entries = [e for e in os.scandir(directory) if e.name.endswith(".json")]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda e: e.stat().st_mtime_ns)
    for entry in entries[:len(entries) - MAX_ENTRIES]:
        with suppress(OSError):
            os.unlink(entry.path)


@cache
def _code_fingerprint() -> str:
    """What loading depends on besides the text: NoETL's version and the size and time of each of its
    modules (an editable install changes without a new version), the interpreter, and the
    directories on ``sys.path`` (installing or removing a library changes its directory's time)."""
    import noetl

    parts = [f"format {_FORMAT}", noetl.__version__, sys.version]
    for entry in sys.path[1:]:  # not the script's directory (or the working one): the user's own files
        with suppress(OSError):
            parts.append(f"{entry} {os.stat(entry or '.').st_mtime_ns}")
    parts.extend(_module_stamps(Path(noetl.__file__).parent))
    return "\n".join(parts)


def _module_stamps(directory: Path) -> list[str]:
    stamps = []
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            if entry.name != "__pycache__":
                stamps.extend(_module_stamps(Path(entry.path)))
        elif entry.name.endswith(".py"):
            info = entry.stat()
            stamps.append(f"{entry.path} {info.st_mtime_ns} {info.st_size}")
    return sorted(stamps)
