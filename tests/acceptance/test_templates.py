"""Templates as a user meets them through `noetl`: lenient undefined names with warnings on stderr
at the playbook's file:line, strict mode, and template bombs that end as one-line errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

LENIENT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: lenient_loop}
workload: {items: [1, 2, 3]}
workflow:
  - step: start
    loop: {in: "{{ items }}", iterator: item}
    input:
      label: "n={{ item }} {{ undefined_suffix }}"
    tool: {kind: python, code: "result = label"}
"""


def test_an_undefined_name_warns_once_at_its_line_and_never_on_stdout(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = tmp_path / "lenient.yaml"
    playbook.write_text(LENIENT)
    result = noetl("run", str(playbook), "--json")
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)  # stdout is exactly the document
    assert [r.strip() for r in doc["steps"]["start"]["result"]["results"]] == ["n=1", "n=2", "n=3"]
    assert len(doc["warnings"]) == 1
    assert doc["warnings"][0]["step"] == "start" and doc["warnings"][0]["field"] == "input.label"
    lines = [line for line in result.stderr.splitlines() if "undefined_suffix" in line]
    assert lines == [f"{playbook}:9:7: warning: step 'start' input.label: 'undefined_suffix' is undefined "
                     "in 'n={{ item }} {{ undefined_suffix }}'"]
    assert noetl("status", doc["execution_id"], "--json").json() == doc


def test_strict_makes_the_undefined_name_an_error(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = tmp_path / "lenient.yaml"
    playbook.write_text(LENIENT)
    result = noetl("run", str(playbook), "--json", "--strict")
    assert result.code == 1
    doc = result.json()
    assert doc["status"] == "failed"
    assert "'undefined_suffix' is undefined in 'n={{ item }} {{ undefined_suffix }}'" in json.dumps(doc["steps"])

    in_playbook = tmp_path / "strict.yaml"
    in_playbook.write_text(LENIENT.replace("workflow:", "executor: {spec: {strict: true}}\nworkflow:"))
    assert noetl("run", str(in_playbook), "--json").code == 1


BOMB = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: bomb}
workflow:
  - step: start
    input: {big: "{{ (9**9)**(9**9) }}"}
    tool: {kind: python, code: "result = big"}
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["input: {big: ", "tool: {kind: shell, command: "])
def test_a_template_bomb_is_a_one_line_error_not_a_hang(noetl, tmp_path: Path, where: str) -> None:  # type: ignore[no-untyped-def]
    text = BOMB if where.startswith("input") else BOMB.replace(
        '    input: {big: "{{ (9**9)**(9**9) }}"}\n    tool: {kind: python, code: "result = big"}',
        '    tool: {kind: shell, command: "echo {{ \'x\' * 2000000000 }}", spec: {timeout: 5}}')
    playbook = tmp_path / "bomb.yaml"
    playbook.write_text(text)
    started = time.monotonic()
    validated = noetl("validate", str(playbook))
    assert validated.code == 0, validated.stderr  # validation never evaluates the template
    result = noetl("run", str(playbook), "--json")
    assert result.code == 1
    error = result.json()["error"]
    assert "\n" not in error and ("bits" in error or "long" in error), error
    assert time.monotonic() - started < 30


NAMES = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: names}
workload: {threshold: 3, cities: [a, b]}
workflow:
  - step: start
    loop: {in: "{{ cities }}", iterator: city}
    input: {c: "{{ city }} {{ iter.city }} {{ loop.index }}", t: "{{ treshold }}"}
    tool: {kind: python, code: "result = {'n': 1}"}
    set: {ctx.total: "{{ (total | default(0)) + 1 }}"}
    next:
      arcs:
        - {step: finish, when: "{{ total > 1 and start.results and optional is defined }}"}
  - step: finish
    input: {all: "{% for x in cities %}{{ x }}{% endfor %}{{ execution_id }}{{ workload.threshold }}"}
"""


def test_validate_warns_about_names_nothing_defines_with_a_suggestion(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = tmp_path / "names.yaml"
    playbook.write_text(NAMES)
    result = noetl("validate", str(playbook))
    assert result.code == 0
    warnings = [line for line in result.stderr.splitlines() if "nothing defines" in line]
    assert warnings == [f"{playbook}:8:63: warning: template uses 'treshold', which nothing defines (no workload "
                        "key, step, set key, iterator or built-in) (did you mean 'threshold'?): '{{ treshold }}'"]
    strict = noetl("validate", "--strict", str(playbook))
    assert strict.code == 2 and "treshold" in strict.stderr
    # `run` reports what it actually used instead, at its line; the static warning is for `validate`.
    run = noetl("run", str(playbook), "--json")
    assert run.code == 0
    assert "nothing defines" not in run.stderr
    assert "'treshold' is undefined" in run.stderr
