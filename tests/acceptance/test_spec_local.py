"""SPEC statements checked through the `noetl` command on the local runtime (fixtures cover the rest)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .conftest import FIXTURES

STATUS_KEYS = {"execution_id", "path", "status", "completed", "failed", "current_step", "completed_steps", "steps",
               "result", "error", "parent_execution_id", "started_at", "ended_at", "duration_seconds", "warnings"}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_status_document_has_exactly_the_section_10_keys(noetl) -> None:  # type: ignore[no-untyped-def]
    result = noetl("run", str(FIXTURES / "entry_first_step.yaml"), "--json")
    doc = result.json()
    assert set(doc) == STATUS_KEYS
    assert isinstance(doc["execution_id"], str) and doc["execution_id"].isdigit()
    assert doc["status"] == "completed" and doc["completed"] is True and doc["failed"] is False
    assert doc["current_step"] is None and doc["parent_execution_id"] is None and doc["error"] is None
    assert doc["started_at"].endswith("+00:00") and doc["ended_at"].endswith("+00:00")
    assert isinstance(doc["duration_seconds"], float | int)
    failed = noetl("run", str(FIXTURES / "python_error_line.yaml"), "--json")
    assert failed.code == 1
    fdoc = failed.json()
    assert set(fdoc) == STATUS_KEYS and fdoc["failed"] is True and fdoc["completed"] is False


def test_loop_events_carry_loop_index_attempt_and_duration(noetl) -> None:  # type: ignore[no-untyped-def]
    doc = noetl("run", str(FIXTURES / "loop_vars.yaml"), "--json").json()
    events = noetl("events", doc["execution_id"], "--json").json()
    assert [e["event_id"] for e in events] == sorted(e["event_id"] for e in events)
    calls = [e for e in events if e["event_type"] == "call.done" and e["node_name"] == "start"]
    assert sorted(e["meta"]["loop_index"] for e in calls) == [0, 1, 2]
    assert all({"command_id", "attempt", "duration", "worker"} <= set(e["meta"]) for e in calls)
    types = [e["event_type"] for e in events if e["node_name"] == "start"]
    assert types[0] == "step.enter" and types[-2:] == ["loop.done", "step.exit"]
    assert all(e["execution_id"] == doc["execution_id"] for e in events)
    assert all(re.search(r"(\+00:00|Z)$", e["created_at"]) for e in events)


RETRY = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: retry_counts}
workflow:
  - step: start
    tool:
      kind: python
      code: "raise RuntimeError('always')"
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'error' }}"
              then: {do: retry, attempts: 3, delay: 0.01, backoff: linear, max_delay: 0.015}
"""

LEGACY_RETRY = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: legacy_retry}
workflow:
  - step: start
    type: python
    retry: {max_attempts: 4, initial_delay: 0.01, backoff_multiplier: 2, max_delay: 0.02,
            retry_when: "{{ error.message is defined }}", stop_when: "{{ 'fatal' in error.message }}"}
    code: "raise RuntimeError('MESSAGE')"
"""


def _attempts(noetl, path: Path) -> int:  # type: ignore[no-untyped-def]
    result = noetl("run", str(path), "--json")
    assert result.code == 1, result.stderr
    events = noetl("events", result.json()["execution_id"], "--json").json()
    (call,) = [e for e in events if e["event_type"] == "call.error"]
    return int(call["meta"]["attempt"])


def test_retry_attempts_count_every_run(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert _attempts(noetl, _write(tmp_path, "retry.yaml", RETRY)) == 3


def test_legacy_retry_when_and_stop_when(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert _attempts(noetl, _write(tmp_path, "transient.yaml", LEGACY_RETRY.replace("MESSAGE", "transient"))) == 4
    assert _attempts(noetl, _write(tmp_path, "fatal.yaml", LEGACY_RETRY.replace("MESSAGE", "fatal error"))) == 1


BAD = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: bad}
workflow:
  - step: start
    tool: {kind: http}
    next: {arcs: [{step: missing}]}
  - step: start
  - step: c
    tool: {kind: postgres, auth: x}
  - step: d
    tool: {kind: python, code: "result = 1", input: {a: "{{ oops( }}"}}
  - step: e
    tool: {kind: workbook, name: nope}
  - step: f
    tool: {kind: playbook}
  - step: g
    tool: {kind: python}
  - step: h
    tool: {kind: duckdb}
  - step: i
    tool: {kind: frobnicate}
"""


def test_validate_reports_every_error_as_file_line_col(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = _write(tmp_path, "bad.yaml", BAD)
    result = noetl("validate", str(bad))
    assert result.code == 2
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert all(re.match(rf"{re.escape(str(bad))}:\d+:\d+: error: ", line) for line in errors), errors
    text = "\n".join(errors)
    for fragment in ("template does not parse", "duplicate step name 'start'", "http tool needs",
                     "arc to missing step 'missing'", "postgres tool needs", "no workbook entry named 'nope'",
                     "playbook tool needs", "python tool needs", "duckdb tool needs",
                     "unknown tool kind 'frobnicate'"):
        assert fragment in text, fragment
    run = noetl("run", str(bad), "--json")
    assert run.code == 2 and run.stdout == ""
    assert noetl("validate", str(FIXTURES / "entry_first_step.yaml"), str(bad)).code == 2


TYPO = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: typo}
workflow:
  - step: start
    desc: a known extra key
    tool: {kind: noop, reslt: 1}
    nxet: {arcs: [{step: b}]}
  - step: b
"""


def test_unknown_keys_warn_at_run_start_and_strict_refuses(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    typo = _write(tmp_path, "typo.yaml", TYPO)
    result = noetl("run", str(typo), "--json")
    assert result.code == 0 and result.json()["status"] == "completed"
    assert "unknown key 'nxet'" in result.stderr and "did you mean 'next'?" in result.stderr
    assert "did you mean 'result'?" in result.stderr
    assert f"{typo}:8:5:" in result.stderr
    assert "desc" not in result.stderr
    strict = noetl("run", str(typo), "--json", "--strict")
    assert strict.code == 2 and strict.stdout == "" and "nxet" in strict.stderr


LEGACY_AUTH = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: legacy_auth}
workflow:
  - step: start
    type: postgres
    auth: {type: postgres, credential: pg_local}
    command: select 1
    next: [two]
  - step: two
    type: postgres
    credentials: {db: {key: pg_other}}
    command: select 1
    next: [three]
  - step: three
    tool: {kind: duckdb, credentials: {pg: {key: pg_other}}, command: select 1}
"""


def test_legacy_auth_forms_migrate_to_auth_name(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    path = _write(tmp_path, "auth.yaml", LEGACY_AUTH)
    migrated = noetl("migrate", str(path))
    assert migrated.code == 0, migrated.stderr
    steps = {s["step"]: s for s in yaml.safe_load(migrated.stdout)["workflow"]}
    assert steps["start"]["tool"]["auth"] == "pg_local"
    assert steps["two"]["tool"]["auth"] == "pg_other" and "credentials" not in steps["two"]["tool"]
    # duckdb attaches every alias of `credentials`: it stays as written
    assert steps["three"]["tool"]["credentials"] == {"pg": {"key": "pg_other"}}
    notes = noetl("validate", str(path))
    assert notes.code == 0
    assert "newer spelling is `auth: <credential name>`" in notes.stderr + notes.stdout


WORKBOOK_ENTRY_INPUT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: workbook_entry_input}
workbook:
  - name: calc
    input: {x: 1, y: 2}
    tool: {kind: python, code: "result = {'x': x, 'y': y}"}
workflow:
  - step: start
    tool: {kind: workbook, name: calc, input: {y: 10}}
"""


def test_workbook_entry_input_beside_its_tool_are_defaults(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An entry's own `input` written beside its `tool` are defaults the calling step's input beats
    key by key (SPEC section 2), as when written inside the tool."""
    doc = noetl("run", str(_write(tmp_path, "entry_input.yaml", WORKBOOK_ENTRY_INPUT)), "--json").json()
    assert doc["status"] == "completed", doc["error"]
    assert doc["result"] == {"x": 1, "y": 10}


def test_unknown_keys_of_a_workbook_entry_warn(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, "entry_typo.yaml", WORKBOOK_ENTRY_INPUT.replace("    input: {x: 1, y: 2}", "    inputs: {x: 1}"))
    result = noetl("validate", str(path))
    assert result.code == 0
    assert "entry_typo.yaml:6:5: warning: unknown key 'inputs' in workbook entry 'calc' (did you mean 'input'?)" \
        in result.stdout + result.stderr


RESULT_IN_INPUT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: result_in_input}
workflow:
  - step: start
    tool: {kind: noop, result: {d: 1}}
    next: [{step: single}]
  - step: single
    input: {prev: "{{ result.d }}"}
    tool: {kind: python, code: "result = {'prev': prev, 'items': [prev, prev + 1]}"}
    next:
      arcs:
        - step: looped
          when: "{{ result.prev == 1 }}"
  - step: looped
    loop: {in: [10, 20], iterator: n}
    input: {n: "{{ n }}", items: "{{ result.items }}"}
    tool: {kind: python, code: "result = n + sum(items)"}
"""


def test_result_in_a_step_input_is_the_result_of_the_step_that_scheduled_it(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SPEC section 3: inside a step's `input`, `result` is the result of the step whose arc
    scheduled it (in every iteration of a loop step too)."""
    doc = noetl("run", str(_write(tmp_path, "result_in_input.yaml", RESULT_IN_INPUT)), "--json").json()
    assert doc["status"] == "completed", doc["error"]
    assert doc["warnings"] == []
    assert doc["steps"]["single"]["result"] == {"prev": 1, "items": [1, 2]}
    assert doc["steps"]["looped"]["result"]["results"] == [13, 23]


def test_a_step_named_result_keeps_its_name_in_inputs(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = RESULT_IN_INPUT.replace("workflow:\n", "executor: {spec: {entry_step: result}}\nworkflow:\n"
                                   "  - step: result\n    tool: {kind: noop, result: {d: 5}}\n"
                                   "    next: [{step: start}]\n")
    doc = noetl("run", str(_write(tmp_path, "named_result.yaml", text)), "--json").json()
    assert doc["steps"]["single"]["result"] == {"prev": 5, "items": [5, 6]}


def test_a_credential_that_does_not_exist_is_named_with_its_field_and_line(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SPEC section 14: a credential that does not exist is a one-line error naming the field and line."""
    path = _write(tmp_path, "no_credential.yaml", """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: no_credential}
workflow:
  - step: start
    tool: {kind: postgres, auth: no_such_credential, command: "select 1"}
""")
    result = noetl("run", str(path), "--json")
    assert result.code == 1
    error = result.json()["steps"]["start"]["error"]
    assert error["kind"] == "credential" and error["field"] == "auth" and error["playbook_line"] == 6
    assert "'no_such_credential' not found" in error["message"]
    assert f"at {path}:6" in result.stderr or "no_credential.yaml:6" in result.stderr


CASE_RETRY_ON_STEP_EXIT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: case_retry_on_step_exit}
workflow:
  - step: start
    tool: {kind: python, code: "raise RuntimeError('always')"}
    case:
      - when: "{{ event.name == 'step.exit' and error is defined }}"
        then:
          retry: {max_attempts: 3, initial_delay: 0.01}
"""


def test_case_retry_rule_on_step_exit_retries_the_call(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A case-era rule that acts inside the step (retry) on step.exit holds once the call has ended."""
    assert _attempts(noetl, _write(tmp_path, "case_retry.yaml", CASE_RETRY_ON_STEP_EXIT)) == 3


def test_python_code_full_of_unclosed_template_openers_validates_at_once(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The check for `{{ name }}` left in python code once looked for a closing `}}` from every `{{`:
    # 400 KB of `{{` (well inside the 10 MB playbook limit) kept the CPU busy for longer than this
    # test's timeout, at validation, registration and run start alike.
    code = "x = {{ workload.n }}\n# " + "{{" * 200_000
    playbook = tmp_path / "openers.yaml"
    playbook.write_text(yaml.safe_dump({
        "apiVersion": "noetl.io/v2", "kind": "Playbook", "metadata": {"name": "openers"},
        "workload": {"n": 1}, "workflow": [{"step": "start", "tool": {"kind": "python", "code": code}}]}))
    result = noetl("validate", str(playbook))
    assert result.code == 0, result.stderr
    assert "{{ workload.n }}" in result.stderr + result.stdout


def test_a_result_ttl_beyond_any_date_is_a_validation_error(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # 999999999999 days cannot be added to a date: the step ran, then failed storing its result.
    marker = tmp_path / "ran"
    for ttl in ("999999999999d", 10**20):
        playbook = tmp_path / "forever.yaml"
        playbook.write_text(yaml.safe_dump({
            "apiVersion": "noetl.io/v2", "kind": "Playbook", "metadata": {"name": "forever"},
            "workflow": [{"step": "start", "output": {"store": {"kind": "disk", "ttl": ttl}},
                          "tool": {"kind": "python", "code": f"open({str(marker)!r}, 'w').close()\nresult = {{}}"}}]}))
        result = noetl("run", str(playbook))
        assert result.code == 2, result.stderr
        assert "output.store.ttl" in result.stderr and "at most" in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and not marker.exists()
