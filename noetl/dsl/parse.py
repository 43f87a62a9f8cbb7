"""From YAML text to a checked canonical :class:`Playbook` (the one entry point for loading).

The checks, the legacy forms and YAML itself are imported when a playbook is analysed, not with this
module: a playbook found in the cache of validated playbooks (:mod:`noetl.dsl.cache`) needs none of
them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noetl.dsl.problems import UNDEFINED_NAME, Problem
from noetl.dsl.source import Source, read_text
from noetl.errors import PlaybookError

if TYPE_CHECKING:
    from noetl.dsl.model import Playbook


@dataclass(slots=True)
class LoadedPlaybook:
    """A playbook's text with what parsing and checking made of it: the model, or the problems found."""

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
    from pydantic import ValidationError

    from noetl.dsl.check import Checker, check_canonical
    from noetl.dsl.code_templates import python_code_warnings
    from noetl.dsl.legacy import UNSUPPORTED, normalize_playbook
    from noetl.dsl.model import Playbook
    from noetl.dsl.shapes import check_shapes

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
    if checker.templates:  # the names templates may use; a playbook without templates needs no Jinja
        from noetl.dsl.names import defined_names

        workload = canonical.get("workload")
        checker.check_names(defined_names(canonical), frozenset(workload) if isinstance(workload, dict) else None)
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


def load_playbook(ref: str, *, cache_dir: Path | None = None, records: bool = False) -> LoadedPlaybook:
    """Load a playbook from a file path or YAML text (see :func:`noetl.dsl.source.read_text`);
    with ``cache_dir``, through the cache of validated playbooks there, and with ``records`` too, a
    playbook found there is a plain record of the model (:mod:`noetl.dsl.records`; for a run)."""
    text, file, base_dir = read_text(ref)
    return load_playbook_text(text, file, base_dir, cache_dir=cache_dir, records=records)


def load_playbook_text(text: str, file: str = "<playbook>", base_dir: Path | None = None, *,
                       cache_dir: Path | None = None, records: bool = False) -> LoadedPlaybook:
    with _collector_paused():
        from noetl.dsl import cache

        if cache_dir is None or not cache.applies(text):
            return _analyse_text(text, file, base_dir)

        key = cache.entry_key(text, file)
        hit = cache.lookup(cache_dir, key, records=records)
        if hit is not None:
            playbook, problems, canonical = hit
            return LoadedPlaybook(playbook, Source.unparsed(text, file, base_dir, _parse_yaml), canonical, problems)
        loaded = _analyse_text(text, file, base_dir)
        if loaded.playbook is not None and not loaded.errors:
            cache.save(cache_dir, key, loaded.playbook, loaded.problems, loaded.canonical)
        return loaded


def _analyse_text(text: str, file: str, base_dir: Path | None) -> LoadedPlaybook:
    source = _parse_yaml(text, file)
    source.base_dir = base_dir
    return analyse(source)


def _parse_yaml(text: str, file: str) -> Source:
    from noetl.dsl.load import parse_yaml  # here: a playbook from the cache does not import YAML

    return parse_yaml(text, file)
