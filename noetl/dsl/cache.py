"""Validated playbooks kept on disk, so that a playbook run again is not checked and validated again.

An entry is what loading one text under one file name found: its problems (warnings and notes; a
playbook with errors is never cached), the canonical document and the validated model, dumped as
JSON and rebuilt with ``model_construct``, which neither validates nor builds pydantic validators.
The model classes of :mod:`noetl.dsl.model` stay the one description of the DSL: the rebuild
follows their field annotations.

The key is the sha256 of the text, the file name and a fingerprint of the code loading depends on
(NoETL's version and modules, the interpreter, the directories libraries are installed in), so a
changed text, file name, NoETL or library never finds an old entry. Entries are written whole
(a temporary file renamed over the entry) and owner-only; the oldest are removed beyond
``MAX_ENTRIES``; a playbook longer than ``MAX_TEXT_CHARS`` is not cached. An entry that cannot be
read is a miss, and deleting the directory is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import types
import typing
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from noetl.dsl.model import Playbook
from noetl.dsl.problems import Problem
from noetl.fileperms import private_directory

MAX_ENTRIES = 256
# What the cache saves is the fixed cost of a short run: the imports and pydantic validators that
# checking and validating need. Per step, rebuilding a playbook with model_construct (Python code)
# costs nearly as much as validating it, and writing the entry costs a first run about half as much
# again, so a long playbook (about 700 steps and more) is not kept: it would cost more than it saves.
MAX_TEXT_CHARS = 64 * 1024
_FORMAT = 1  # of an entry; part of the key


def applies(text: str) -> bool:
    return len(text) <= MAX_TEXT_CHARS


def entry_key(text: str, file: str) -> str:
    digest = hashlib.sha256()
    for part in (_code_fingerprint(), file, text):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def lookup(directory: Path, key: str) -> tuple[Playbook, list[Problem], dict[str, Any]] | None:
    """The playbook, problems and canonical document of entry ``key``, or None (a miss)."""
    try:
        entry = json.loads((directory / f"{key}.json").read_bytes())
        playbook = construct(Playbook, entry["playbook"])
        problems = [Problem(*fields) for fields in entry["problems"]]
        canonical = entry["canonical"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(playbook, Playbook) or not isinstance(canonical, dict):
        return None
    return playbook, problems, canonical


def save(directory: Path, key: str, playbook: Playbook, problems: list[Problem], canonical: dict[str, Any]) -> None:
    """Keep what loading found, unless JSON cannot carry it exactly (dates, non-string keys, ...)."""
    entry = {"playbook": playbook.model_dump(exclude_unset=True),
             "problems": [[p.severity, p.where, p.message, p.code] for p in problems], "canonical": canonical}
    try:
        text = json.dumps(entry, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return
    if json.loads(text) != entry:
        return  # a tuple, an integer key or the like would come back different
    with suppress(OSError):  # a read-only or full home only costs the next run the validation
        _write(directory, key, text)


def construct(cls: type[BaseModel], data: Any) -> BaseModel:
    """``cls`` rebuilt from ``model_dump(exclude_unset=True)``: nested models by their annotations,
    the set fields as they were, no validation."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    values = dict(data)
    for name, (many, model) in _model_fields(cls).items():
        value = values.get(name)
        if value is not None:
            values[name] = [construct(model, v) for v in value] if many else construct(model, value)
    return cls.model_construct(_fields_set=set(values), **values)


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
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_mentions_model(arg) for arg in typing.get_args(annotation))


def _write(directory: Path, key: str, text: str) -> None:
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
