"""From YAML text to a checked canonical :class:`Playbook` (the one entry point for loading)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from noetl.dsl.check import UNDEFINED_NAME, Checker, Problem, check_canonical
from noetl.dsl.code_templates import python_code_warnings
from noetl.dsl.legacy import UNSUPPORTED, normalize_playbook
from noetl.dsl.load import Source, parse_yaml, read_source
from noetl.dsl.model import Playbook
from noetl.dsl.names import defined_names
from noetl.dsl.shapes import check_shapes
from noetl.errors import PlaybookError


@dataclass(slots=True)
class LoadedPlaybook:
    playbook: Playbook | None
    source: Source
    canonical: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def key_warnings(self) -> list[Problem]:
        """Warnings shown before a run and refused by `run --strict`: all but template names, which
        the run itself reports where they are used (and strict mode fails on there)."""
        return [p for p in self.warnings if p.code != UNDEFINED_NAME]

    @property
    def base_dir(self) -> Path | None:
        return self.source.base_dir

    def require(self, *, strict: bool = False) -> Playbook:
        """The playbook, or a PlaybookError carrying the first error as one line."""
        blocking = self.errors or (self.key_warnings if strict else [])
        if blocking or self.playbook is None:
            first = blocking[0] if blocking else None
            message = f"{first.where}: {first.message}" if first else f"{self.source.file}: invalid playbook"
            raise PlaybookError(message,
                                problems=blocking)
        return self.playbook


def analyse(source: Source) -> LoadedPlaybook:
    """Normalise, check and build the model; never raises for problems in the document."""
    raw = source.data
    loaded = LoadedPlaybook(playbook=None, source=source)
    checker = Checker(source)
    if not isinstance(raw, dict):
        checker.error((), "a playbook must be a YAML mapping with `metadata` and `workflow`")
        loaded.problems = checker.problems
        return loaded
    if raw.get("kind") not in (None, "Playbook", "playbook"):
        checker.error(("kind",), f"kind must be 'Playbook', got {raw.get('kind')!r}")
    check_shapes(checker, raw)
    if checker.problems and any(p.severity == "error" for p in checker.problems):
        loaded.problems = checker.problems  # values of the wrong type: normalising them would only guess
        return loaded
    checker.check_keys(raw)
    checker.check_ambiguity(raw)
    checker.check_templates(raw)
    try:
        canonical, notes = normalize_playbook(raw)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # A shape check_shapes does not know yet: still one line, never a traceback.
        checker.error((), f"cannot read this playbook's structure ({type(exc).__name__}: {exc})")
        loaded.problems = checker.problems
        return loaded
    for path, message in notes:
        if message.startswith(UNSUPPORTED):
            checker.warn(path, message.removeprefix(UNSUPPORTED).strip())
        else:
            checker.note(path, message)
    check_canonical(checker, canonical)
    for path, message in python_code_warnings(canonical, raw):
        checker.warn(path, message)
    checker.check_names(defined_names(canonical))
    loaded.canonical = canonical
    if not any(p.severity == "error" for p in checker.problems):
        try:
            loaded.playbook = Playbook.model_validate(canonical)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                field_name = ".".join(str(p) for p in loc) or "playbook"
                checker.error(loc, f"{field_name}: {err['msg']}")
    loaded.problems = checker.problems
    return loaded


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading builds a large tree of new objects and no reference cycles; letting the garbage
    collector scan them over and over cost a third of the load time of a 10,000-step playbook."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_playbook(ref: str) -> LoadedPlaybook:
    """Load a playbook from a file path or YAML text (see :func:`read_source`)."""
    with _collector_paused():
        return analyse(read_source(ref))


def load_playbook_text(text: str, file: str = "<playbook>", base_dir: Path | None = None) -> LoadedPlaybook:
    with _collector_paused():
        source = parse_yaml(text, file)
        source.base_dir = base_dir
        return analyse(source)
