"""Hostile documents through the `noetl` command: alias bombs, recursive aliases, complex keys, deep
nesting, NaN payloads, JSON playbooks, credential lists and all-or-nothing directory registration."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .conftest import run_noetl

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: lim, path: t/lim}\n"
OK = HEAD + "workflow:\n  - step: start\n    tool: {kind: noop}\n"
LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10))
BOMB = HEAD + "workload:\n  l0: &l0 lol\n" + "".join("  " + line for line in LAUGHS.splitlines(True)) + \
    "workflow:\n  - step: start\n    tool: {kind: noop}\n"


@pytest.mark.parametrize(("text", "says"), [
    (BOMB, "YAML aliases expand to more than 10000 nodes"),
    (HEAD + "workload: &x [*x]\nworkflow: []\n", "recursive YAML alias"),
    (HEAD + "workload:\n  ? [a, b]\n  : c\nworkflow: []\n", "mapping key must be a plain value"),
    (HEAD + "workload: " + "[" * 150 + "]" * 150 + "\nworkflow: []\n", "nested more than 100 levels"),
], ids=["alias-bomb", "recursive-alias", "complex-key", "deep"])
def test_hostile_yaml_is_one_line_exit_2_quickly(noetl, tmp_path: Path, text: str, says: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    started = time.monotonic()
    result = noetl("validate", str(path))
    assert time.monotonic() - started < 10
    assert result.code == 2, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert f"{path}:" in result.stderr


def test_a_json_playbook_with_surrogate_pair_escapes_runs(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = {"apiVersion": "noetl.io/v2", "kind": "Playbook", "metadata": {"name": "j", "path": "t/j"},
           "workload": {"fire": "🔥"}, "workflow": [{"step": "start", "tool": {"kind": "noop"}}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))  # ensure_ascii: "\ud83d\udd25"
    assert "\\ud83d\\udd25" in path.read_text()
    result = noetl("run", str(path), "--json")
    assert result.code == 0, result.stderr


def test_payloads_that_json_cannot_carry_exit_2(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ok.yaml"
    path.write_text(OK)
    for args, says in ((["--payload", '{"x": NaN}'], "NaN is not a JSON number"),
                       (["--payload", '{"x": "\\ud800"}'], "lone UTF-16 surrogate"),
                       (["--payload", "[" * 3000 + "]" * 3000], "levels deep"),
                       (["--set", ".".join(["a"] * 3000) + "=1"], "levels deep")):
        result = noetl("run", str(path), *args)
        assert result.code == 2, (args, result.stderr)
        assert says in result.stderr and result.stderr.count("\n") == 1


def test_credential_files_with_lists_and_documents_register(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    listed = tmp_path / "list.yaml"
    listed.write_text("- {name: c1, type: generic, data: {k: v}}\n- {name: c2, type: generic, data: {k: v}}\n")
    documents = tmp_path / "docs.yaml"
    documents.write_text("name: c3\ntype: generic\ndata: {k: v}\n---\nname: c4\ntype: generic\ndata: {k: v}\n")
    for file in (listed, documents):
        result = noetl("catalog", "register", str(file))
        assert result.code == 0, result.stderr
    names = {row["name"] for row in noetl("credential", "list", "--json").json()}
    assert {"c1", "c2", "c3", "c4"} <= names


def test_a_directory_with_one_bad_file_registers_nothing(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "flows"
    folder.mkdir()
    for name in ("a", "b", "d"):
        (folder / f"{name}.yaml").write_text(OK.replace("t/lim", f"t/{name}"))
    (folder / "c.yaml").write_text(HEAD.replace("t/lim", "t/c") + "workflow:\n  - step: start\n    tool: {kind: nope}\n")
    result = noetl("catalog", "register", str(folder))
    assert result.code == 2 and "c.yaml" in result.stderr
    assert noetl("catalog", "list", "--json").json() == []
    (folder / "c.yaml").unlink()
    assert noetl("catalog", "register", str(folder)).code == 0
    assert len(noetl("catalog", "list", "--json").json()) == 3


def test_alias_bomb_in_a_credential_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cred.yaml"
    path.write_text("name: boom\ntype: generic\ndata:\n  l0: &l0 lol\n" +
                    "".join("  " + line for line in LAUGHS.splitlines(True)))
    result = run_noetl("register", "credential", "-f", str(path), home=tmp_path / "home")
    assert result.code == 2 and "alias bomb" in result.stderr


@pytest.mark.parametrize(("step", "says"), [
    ("tool: 5", "`tool` must be a mapping"),
    ("tool: {kind: noop}\n    next: 5", "`next` must be"),
    ("tool: {kind: noop}\n    next: {arcs: 5}", "`next.arcs` must be a list"),
    ("tool: {kind: noop}\n    set: 5", "`set` must be a mapping"),
    ("tool: {kind: noop}\n    input: [1]", "`input` must be a mapping"),
    ("tool: {kind: noop, spec: {timeout: -1}}", "`spec.timeout` must be a positive number"),
    ("tool: {kind: python, code: 'x = 1'}\n    retry: {attempts: -2}", "`retry.attempts` must be a whole number"),
    ("tool: {kind: noop, spec: {policy: {rules: [{then: {do: retry, attempts: -1}}]}}}", "`then.attempts`"),
    # A v1 retry block is read at load: a word or a template there named its field nowhere (1:1,
    # "cannot read this playbook's structure (ValueError: invalid literal for int() ...)").
    ("tool: {kind: noop}\n    retry: {max_attempts: many}", "`retry.max_attempts` must be a whole number, got 'many'"),
    ("tool: {kind: noop}\n    retry: {max_attempts: '{{ workload.n }}'}", "`retry.max_attempts` must be a whole number"),
    ("tool: {kind: noop}\n    retry: {max_attempts: 2, initial_delay: soon}", "`retry.initial_delay` must be a number"),
    # The {on_error, on_success} and list spellings are read at load too; a word for the whole
    # retry was silently no retry at all.
    ("tool: {kind: noop}\n    retry: {on_error: {max_attempts: many}}", "`retry.max_attempts` must be a whole number"),
    ("tool: {kind: noop}\n    retry: [{when: '{{ true }}', then: {delay: soon}}]", "`retry.delay` must be a number"),
    ("tool: {kind: noop}\n    retry: many", "`retry` must be a mapping, a list, true/false or a whole number"),
    ("tool: {kind: noop}\n    retry: 2.5", "`retry` must be a mapping, a list, true/false or a whole number"),
    ("type: iterator\n    collection: [1]\n    element: x\n    task: {type: noop, retry: {max_attempts: many}}",
     "`retry.max_attempts` must be a whole number"),
    ("tool: {kind: noop}\n    loop: {pagination: {continue_while: '{{ false }}', max_iterations: many}}",
     "`loop.pagination.max_iterations` must be a whole number"),
    # An infinite delay passed and made a retry wait for ever.
    ("tool: {kind: noop}\n    retry: {max_attempts: 2, delay: .inf}", "`retry.delay` must be a number from 0, finite"),
    ("tool: {kind: noop, spec: {policy: {rules: [{then: {do: retry, delay: .inf}}]}}}",
     "`then.delay` must be a number from 0, finite"),
], ids=["tool", "next", "arcs", "set", "input", "timeout", "retry", "policy", "max_attempts", "template", "delay",
        "on_error", "list", "word", "fraction", "iterator_task", "pagination", "infinite_delay", "infinite_policy_delay"])
def test_values_of_the_wrong_type_are_validation_errors(noetl, tmp_path: Path, step: str, says: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "typed.yaml"
    path.write_text(HEAD + f"workflow:\n  - step: start\n    {step}\n")
    for command in ("validate", "run"):
        result = noetl(command, str(path))
        assert result.code == 2, (command, result.stderr)
        assert says in result.stderr and "Traceback" not in result.stderr and f"{path}:" in result.stderr


def test_a_workbook_that_is_not_a_list_is_an_error(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "wb.yaml"
    path.write_text(HEAD + "workbook: 5\nworkflow:\n  - step: start\n    tool: {kind: noop}\n")
    result = noetl("validate", str(path))
    assert result.code == 2 and "workbook: expected a list" in result.stderr
