"""The cache of validated playbooks: a playbook loaded from it is the playbook loading it again gives."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from noetl.dsl import cache
from noetl.dsl.behaviour import plain_dump
from noetl.dsl.model import Playbook
from noetl.dsl.parse import load_playbook, load_playbook_text
from noetl.dsl.records import Record

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted([*ROOT.glob("examples/**/*.yaml"), *(ROOT / "tests" / "fixtures" / "playbooks").glob("*.yaml"),
                    *(ROOT / "tests" / "conformance").glob("**/*.yaml")])


def _fields_set(model: Any) -> Any:
    """Every model's set fields, all the way down (equality of models does not compare them)."""
    if isinstance(model, BaseModel):
        return (type(model).__name__, sorted(model.model_fields_set),
                {name: _fields_set(value) for name, value in model.__dict__.items()})
    if isinstance(model, list):
        return [_fields_set(item) for item in model]
    return None


def _valid(path: Path) -> bool:
    loaded = load_playbook(str(path))
    return loaded.playbook is not None and not loaded.errors


@pytest.mark.parametrize("path", [p for p in PLAYBOOKS if _valid(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_a_cached_playbook_is_the_playbook_validation_gives(path: Path, tmp_path: Path) -> None:
    fresh = load_playbook(str(path))
    first = load_playbook(str(path), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 1, "a valid playbook is kept"
    hit = load_playbook(str(path), cache_dir=tmp_path)
    assert hit.playbook is not first.playbook
    assert hit.playbook == fresh.playbook
    assert _fields_set(hit.playbook) == _fields_set(fresh.playbook)
    assert hit.playbook is not None and fresh.playbook is not None
    assert hit.playbook.model_dump() == fresh.playbook.model_dump()
    assert hit.problems == fresh.problems
    assert hit.canonical == fresh.canonical
    assert hit.source.text == fresh.source.text and hit.source.file == fresh.source.file
    assert hit.base_dir == fresh.base_dir
    # Read only to place a warning or an error: parsed on demand, the same as a parsed source.
    assert hit.source.data == fresh.source.data
    assert hit.source.positions == fresh.source.positions


@pytest.mark.parametrize("path", [p for p in PLAYBOOKS if _valid(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_plain_dump_is_model_dump_without_nones(path: Path) -> None:
    playbook = load_playbook(str(path)).playbook
    assert playbook is not None
    for step in playbook.workflow:
        for task in step.tool:
            assert plain_dump(task) == task.model_dump(exclude_none=True)
    for entry in playbook.workbook:
        for task in entry.tool:
            assert plain_dump(task) == task.model_dump(exclude_none=True)


TEXT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: cached}
workflow:
  - step: start
    tool: {kind: python, code: "result = 1", colour: blue}
    next: {arcs: [{step: end}]}
  - step: end
"""


def test_the_key_is_the_text_and_the_file_name(tmp_path: Path) -> None:
    load_playbook_text(TEXT, "a.yaml", cache_dir=tmp_path)
    load_playbook_text(TEXT, "a.yaml", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 1
    renamed = load_playbook_text(TEXT, "b.yaml", cache_dir=tmp_path)  # problems name the file
    assert len(list(tmp_path.glob("*.json"))) == 2
    assert renamed.warnings and all(p.where.startswith("b.yaml:") for p in renamed.warnings)
    load_playbook_text(TEXT.replace("result = 1", "result = 2"), "a.yaml", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 3


def test_warnings_come_back_from_the_cache(tmp_path: Path) -> None:
    fresh = load_playbook_text(TEXT, "a.yaml")
    load_playbook_text(TEXT, "a.yaml", cache_dir=tmp_path)
    hit = load_playbook_text(TEXT, "a.yaml", cache_dir=tmp_path)
    assert [str(p) for p in hit.key_warnings] == [str(p) for p in fresh.key_warnings]
    assert any("colour" in p.message for p in hit.key_warnings)


def test_a_playbook_with_errors_is_not_kept(tmp_path: Path) -> None:
    broken = TEXT.replace("{step: end}", "{step: nowhere}")
    assert load_playbook_text(broken, "a.yaml", cache_dir=tmp_path).errors
    assert not list(tmp_path.glob("*.json"))
    assert load_playbook_text(broken, "a.yaml", cache_dir=tmp_path).errors


@pytest.mark.parametrize("workload", ["{day: 2026-01-02}", "{table: {7: seven}}"], ids=["a date", "a number key"])
def test_what_json_cannot_carry_exactly_is_not_kept(workload: str, tmp_path: Path) -> None:
    text = TEXT.replace("metadata: {name: cached}", f"metadata: {{name: cached}}\nworkload: {workload}")
    loaded = load_playbook_text(text, "a.yaml", cache_dir=tmp_path)
    assert loaded.playbook is not None and not loaded.errors
    assert not list(tmp_path.glob("*.json"))


def test_an_unreadable_entry_is_a_miss(tmp_path: Path) -> None:
    fresh = load_playbook_text(TEXT, "a.yaml", cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.json")
    for damage in ("{", "[]", '{"playbook": {"metadata": 3}, "problems": [], "canonical": {}}'):
        entry.write_text(damage)
        again = load_playbook_text(TEXT, "a.yaml", cache_dir=tmp_path)
        assert again.playbook == fresh.playbook and again.problems == fresh.problems
    assert load_playbook_text(TEXT, "a.yaml", cache_dir=tmp_path).playbook == fresh.playbook


def test_entries_are_owner_only_and_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    for i in range(5):
        load_playbook_text(TEXT.replace("result = 1", f"result = {i}"), "a.yaml", cache_dir=tmp_path / "c")
    entries = list((tmp_path / "c").iterdir())
    assert len(entries) == 3
    assert all(e.stat().st_mode & 0o077 == 0 for e in [tmp_path / "c", *entries])


def test_every_model_field_can_be_rebuilt() -> None:
    """A field type the rebuild cannot follow (a dict of models, say) must fail here, not in a run."""
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [Playbook]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        todo.extend(nested for _many, nested in cache._model_fields(model).values())
    assert len(seen) > 10


def test_a_long_playbook_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MAX_TEXT_CHARS", len(TEXT) - 1)
    assert load_playbook_text(TEXT, "a.yaml", cache_dir=tmp_path).playbook is not None
    assert not list(tmp_path.glob("*.json"))


def _record_view(value: Any) -> Any:
    """A model or record as what a run reads of it: class name, fields, extra fields, behaviour."""
    if isinstance(value, BaseModel | Record):
        view = {name: _record_view(item) for name, item in value.__dict__.items()}
        return (type(value).__name__, view, value.__pydantic_extra__)
    if isinstance(value, list):
        return [_record_view(item) for item in value]
    return value


@pytest.mark.parametrize("path", [p for p in PLAYBOOKS if _valid(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_a_cached_playbook_for_a_run_is_a_record_of_the_validated_model(path: Path, tmp_path: Path) -> None:
    fresh = load_playbook(str(path)).playbook
    load_playbook(str(path), cache_dir=tmp_path, records=True)
    hit = load_playbook(str(path), cache_dir=tmp_path, records=True).playbook
    assert isinstance(hit, Record) and fresh is not None
    assert _record_view(hit) == _record_view(fresh)
    assert (hit.path, hit.entry_step, sorted(hit.step_map())) == (fresh.path, fresh.entry_step, sorted(fresh.step_map()))
    for got, want in zip(hit.workflow, fresh.workflow, strict=True):
        assert got.kind == want.kind
        assert [plain_dump(t) for t in got.tool] == [plain_dump(t) for t in want.tool]
        assert [t.config() for t in got.tool] == [t.config() for t in want.tool]
    # pydantic's own API is the model's, and the model is the validated one
    assert hit.model_dump() == fresh.model_dump()
    assert hit == fresh and hit.as_model() == fresh
    assert _fields_set(hit.as_model()) == _fields_set(fresh)
    assert pickle.loads(pickle.dumps(hit)) == hit


def test_a_run_of_a_cached_playbook_imports_no_pydantic(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(TEXT)
    env = {**os.environ, "NOETL_HOME": str(tmp_path / "home")}
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'"
              " or m == 'noetl.dsl.model')))\n"
              "sys.argv = ['noetl', 'run', sys.argv[1]]\n"
              "from noetl.cli.main import main\nmain()\n")
    for _run in ("first", "again"):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "p.yaml")], env=env,
                              capture_output=True, text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stderr
    imported = done.stdout.strip().splitlines()[-1]
    assert imported == "[]", f"a run again imported {imported}"
