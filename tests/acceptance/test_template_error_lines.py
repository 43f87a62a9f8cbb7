"""A template that fails while a playbook runs is pointed at by the playbook file's line, like a
python error: in `noetl run`'s progress, in `noetl status`, and as `playbook_line` in the status."""

from __future__ import annotations

from pathlib import Path

import pytest

HEAD = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: broken_template}
workload:
  items: [1, 2]
workflow:
"""
END = """    next: {arcs: [{step: end}]}
  - step: end
"""

CASES = {
    # the step's input, rendered by the engine as the step is entered
    "input": ("""  - step: start
    input:
      x: "{{ workload.items + 'a' }}"
    tool: {kind: python, code: "result = x"}
""", 9, "step 'start' input.x: TypeError"),
    # one loop iteration's input, reported by the iteration's call
    "iteration input": ("""  - step: start
    loop: {in: "{{ workload.items }}", iterator: it}
    input:
      x: "{{ it / 0 }}"
    tool: {kind: python, code: "result = x"}
""", 10, "step 'start': 2 of 2 iterations failed: step 'start' input.x: ZeroDivisionError"),
    # a tool field, rendered by the runner just before the call
    "tool field": ("""  - step: start
    tool:
      kind: http
      url: "{{ 1 / 0 }}"
""", 10, "step 'start' url: ZeroDivisionError"),
    # the step's `set`, rendered while routing a step whose call succeeded
    "set": ("""  - step: start
    tool: {kind: python, code: "result = 1"}
    set:
      ctx.total: "{{ result / 0 }}"
""", 10, "step 'start' set ctx.total: ZeroDivisionError"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_failed_template_names_the_playbook_file_line(noetl, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    body, line, message = CASES[case]
    playbook = tmp_path / "broken.yaml"
    playbook.write_text(HEAD + body + END)
    assert playbook.read_text().splitlines()[line - 1].strip().startswith(("x:", "url:", "ctx.total:"))

    run = noetl("run", str(playbook))
    assert run.code == 1
    assert f"at {playbook}:{line}" in run.stderr, run.stderr
    execution_id = noetl("executions", "--json").json()[0]["execution_id"]
    status = noetl("status", execution_id)
    assert any(text.startswith(f"    at {playbook}:{line}: {message}") for text in status.stdout.splitlines()), \
        status.stdout
    error = noetl("status", execution_id, "--json").json()["steps"]["start"]["error"]
    assert error["playbook_line"] == line


def test_a_v1_step_input_error_points_at_the_step_when_the_field_is_spelled_the_old_way(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = tmp_path / "v1.yaml"
    playbook.write_text("""apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: v1_broken}
workflow:
  - step: start
    type: python
    code: "def main(x): return x"
    with:
      x: "{{ 1 / 0 }}"
    next: [{step: end}]
  - step: end
""")
    run = noetl("run", str(playbook))
    assert run.code == 1 and f"at {playbook}:5" in run.stderr, run.stderr
