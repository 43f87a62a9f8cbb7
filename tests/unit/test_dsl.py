"""Loading, checking and normalising playbooks: errors name file:line:col, warnings suggest."""

from __future__ import annotations

import pytest

from noetl.dsl.parse import load_playbook_text
from noetl.errors import PlaybookError

BASE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: t}
workflow:
  - step: start
    tool: {kind: python, code: "result = 1"}
    next: {arcs: [{step: end}]}
  - step: end
"""


def problems(text: str, severity: str = "error") -> list[str]:
    return [f"{p.where}: {p.message}" for p in load_playbook_text(text, "pb.yaml").problems if p.severity == severity]


def test_valid_playbook_has_no_errors_or_warnings() -> None:
    assert problems(BASE) == [] and problems(BASE, "warning") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("kind: python", "kind: pythn"), "pb.yaml:6:5: step 'start': unknown tool kind 'pythn' (did you mean 'python'?)"),
        (("{step: end}", "{step: ned}"), "pb.yaml:7:5: step 'start': arc to missing step 'ned' (did you mean 'end'?)"),
        (("  - step: end\n", "  - step: start\n"), "pb.yaml:8:5: duplicate step name 'start' (first at workflow[0])"),
        (('code: "result = 1"', 'code: "x", input: {a: "{{ a. }}"}'), "pb.yaml:6:45: template does not parse: expected name or number"),
        (('code: "result = 1"', "input: {}"), "pb.yaml:6:5: step 'start': python tool needs one of: code, code_b64, script"),
        (('    next:', '    retry: {max_attempts: many}\n    next:'),
         "pb.yaml:7:13: step 'start': `retry.max_attempts` must be a whole number, got 'many'"),
    ],
)
def test_errors_name_the_place(change: tuple[str, str], expected: str) -> None:
    found = problems(BASE.replace(*change))
    assert any(p.startswith(expected) for p in found), found


def test_entry_step_must_exist() -> None:
    text = BASE + "executor: {spec: {entry_step: begin}}\n"
    assert any("entry_step 'begin' is not a step" in p for p in problems(text))


def test_unknown_keys_are_warnings_with_suggestions() -> None:
    text = BASE.replace("    next:", "    nxet: 1\n    next:")
    warnings = problems(text, "warning")
    assert warnings == ["pb.yaml:7:5: unknown key 'nxet' in step 'start' (did you mean 'next'?)"]
    assert load_playbook_text(text).playbook is not None  # a warning never blocks
    with pytest.raises(PlaybookError):
        load_playbook_text(text).require(strict=True)


def test_malformed_yaml_is_one_line_with_position() -> None:
    from noetl.dsl.load import parse_yaml

    with pytest.raises(PlaybookError) as info:
        parse_yaml("workflow:\n  - step: a\n   bad: [\n", "broken.yaml")
    message = str(info.value)
    assert message.startswith("broken.yaml:") and "invalid YAML" in message and "\n" not in message


def test_entry_step_defaults() -> None:
    text = BASE.replace("step: start", "step: first")
    assert load_playbook_text(text).require().entry_step == "first"
    assert load_playbook_text(BASE).require().entry_step == "start"


def test_loop_pagination_notes_only_the_key_the_playbook_wrote() -> None:
    text = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pages}
workflow:
  - step: start
    tool: {kind: http, url: "http://127.0.0.1:9/items", params: {page: 1}}
    loop:
      pagination:
        continue_while: "{{ response.data.hasMore }}"
        next_page: {params: {page: "{{ response.data.page + 1 }}"}}
        merge_path: data.items
"""
    messages = [p.message for p in load_playbook_text(text).problems if p.severity == "note"]
    assert any("`loop.pagination`: newer spelling" in m for m in messages)
    assert not any("step `retry:`" in m for m in messages), messages


def test_legacy_forms_normalise_with_notes() -> None:
    text = """
apiVersion: noetl.io/v1
metadata: {name: legacy}
workflow:
  - step: start
    type: python
    code: "def main(x): return x"
    with: {x: 1}
    retry: {max_attempts: 4, initial_delay: 0.5, backoff_multiplier: 2}
    next: [{when: "{{ result > 0 }}", then: [{step: pos}], else: [{step: neg}]}]
  - step: pos
    call: {type: playbooks, path: sub/child, with: {a: 1}}
  - step: neg
"""
    loaded = load_playbook_text(text)
    playbook = loaded.require()
    start = playbook.step_map()["start"]
    assert start.tool[0].kind == "python" and start.input == {"x": 1}
    rule = start.tool[0].spec.policy.rules[0]  # type: ignore[union-attr]
    assert rule.then.do == "retry" and rule.then.attempts == 4 and rule.then.backoff == "exponential"
    assert [(a.step, a.when) for a in start.next.arcs] == [("pos", "{{ result > 0 }}"), ("neg", "{{ not (result > 0) }}")]
    pos = playbook.step_map()["pos"].tool[0]
    assert pos.kind == "playbook" and pos.config()["input"] == {"a": 1}
    assert any(p.severity == "note" for p in loaded.problems)


V1_TOP_LEVEL_IDENTITY = """\
apiVersion: noetl.io/v1
kind: Playbook
name: hello_v1
path: examples/hello_v1
workflow:
  - step: start
    next: [{step: end}]
  - step: end
"""


def test_v1_top_level_name_and_path_are_the_playbook_identity() -> None:
    loaded = load_playbook_text(V1_TOP_LEVEL_IDENTITY, "pb.yaml")
    playbook = loaded.require()
    assert (playbook.metadata.name, playbook.metadata.path) == ("hello_v1", "examples/hello_v1")
    assert problems(V1_TOP_LEVEL_IDENTITY, "warning") == []
    assert "pb.yaml:3:1: top-level `name:`/`path:`: newer spelling is `metadata: {name: ..., path: ...}`" in \
        problems(V1_TOP_LEVEL_IDENTITY, "note")


def test_top_level_name_beside_metadata_is_an_unknown_key() -> None:
    text = BASE.replace("metadata: {name: t}", "metadata: {name: t}\nname: other")
    assert load_playbook_text(text).require().metadata.name == "t"
    assert any("unknown key 'name' in playbook" in w for w in problems(text, "warning"))


def test_top_level_path_without_a_name_names_the_missing_field() -> None:
    text = V1_TOP_LEVEL_IDENTITY.replace("name: hello_v1\n", "")
    assert problems(text) == ["pb.yaml:1:1: metadata.name: Field required"]


def test_every_tool_kind_is_known_to_the_validator_the_loader_and_the_schema() -> None:
    from noetl.dsl.kinds import KNOWN_KINDS, TOOL_KINDS
    from noetl.dsl.schema import playbook_schema
    from noetl.tools.base import get_tool

    assert playbook_schema()["$defs"]["Task"]["properties"]["kind"]["enum"] == sorted(KNOWN_KINDS)
    for spec in TOOL_KINDS.values():
        if spec.runner is not None:
            assert callable(get_tool(spec.kind))
    # The fields a kind takes come from the same table: python's `code` is unknown to noop.
    [warning] = problems(BASE.replace("kind: python", "kind: noop"), "warning")
    assert "'code'" in warning and "noop tool" in warning


def test_validate_warns_about_a_workload_key_the_workload_does_not_declare() -> None:
    text = (
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: w, path: t/w}\nworkload: {cty: Paris}\n"
        "workflow:\n  - step: start\n"
        "    tool: {kind: python, input: {a: '{{ workload.city }}', b: '{{ workload.cty }}',"
        " c: \"{{ workload.zip | default('') }}\"}, code: 'result = a'}\n"
    )
    warnings = problems(text, "warning")
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("pb.yaml:7:") and "workload key 'city'" in warnings[0] and "'cty'" in warnings[0]


def test_a_pipeline_task_without_kind_says_kind_is_missing() -> None:
    text = BASE.replace('tool: {kind: python, code: "result = 1"}', 'tool: [{fetch: {code: "result = 1"}}]')
    found = problems(text)
    assert any("a tool needs `kind:` (it has keys: fetch)" in p and p.startswith("pb.yaml:6:") for p in found), found


def test_a_pipeline_task_named_by_its_one_key_is_a_named_task() -> None:
    """Real NoETL playbooks write `- fetch: {kind: ...}` for `- name: fetch` with `kind:` beside it."""
    text = BASE.replace('tool: {kind: python, code: "result = 1"}', 'tool: [{fetch: {kind: python, code: "result = 1"}}]')
    assert problems(text, "error") == []
    assert load_playbook_text(text).require().workflow[0].tool[0].name == "fetch"


def test_a_secrets_tool_without_a_secret_name_is_refused_by_validation() -> None:
    missing = problems(BASE.replace('tool: {kind: python, code: "result = 1"}', "tool: {kind: secrets, provider: env}"))
    assert any("secrets tool needs one of: secret_name, name, key" in p for p in missing), missing
    named = problems(BASE.replace('tool: {kind: python, code: "result = 1"}',
                                  "tool: {kind: secrets, provider: env, name: API_TOKEN}"))
    assert not any("secrets tool needs" in p for p in named), named


def test_unknown_keys_of_next_arcs_and_loops_warn_with_a_suggestion() -> None:
    """SPEC section 14: a misspelt key is a warning with a did-you-mean, wherever it is (an arc's
    `wen:` would otherwise make the arc fire unconditionally)."""
    text = (
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: w}\nworkflow:\n  - step: start\n"
        "    tool: {kind: noop}\n    next:\n      spek: {mode: inclusive}\n      arcs:\n"
        "        - step: b\n          wen: '{{ false }}'\n"
        "  - step: b\n    loop: {in: [1], iteratr: x, spec: {mode: parallel, max_inflight: 2}}\n    tool: {kind: noop}\n"
    )
    warnings = problems(text, "warning")
    expected = [("pb.yaml:8:7:", "'spek'", "'spec'"), ("pb.yaml:11:11:", "'wen'", "'when'"),
                ("pb.yaml:13:", "'iteratr'", "'iterator'"), ("pb.yaml:13:", "'max_inflight'", "'max_in_flight'")]
    for where, key, suggestion in expected:
        assert any(w.startswith(where) and f"unknown key {key}" in w and suggestion in w for w in warnings), \
            (key, warnings)


def test_a_policy_rule_reading_a_field_named_outcome_keeps_it() -> None:
    """`outcome` is the older spelling of the task's `output` only as a name of its own: a field of
    the tool's data, a ctx or iter variable, or a string that says outcome is left as written."""
    rule = ('spec: {policy: {rules: [{when: "{{ output.data.outcome == \'outcome\' }}", '
            'then: {do: continue, set: {ctx.outcome: "{{ iter.outcome }}"}}}]}}')
    text = BASE.replace('tool: {kind: python, code: "result = 1"}',
                        'tool: {kind: python, code: "result = 1", ' + rule + '}')
    (loaded,) = load_playbook_text(text).require().workflow[0].tool[0].spec.policy.rules  # type: ignore[union-attr]
    assert loaded.when == "{{ output.data.outcome == 'outcome' }}"
    assert loaded.then.set == {"ctx.outcome": "{{ iter.outcome }}"}


def test_a_case_rule_sink_on_a_failed_call_is_not_run_after_a_successful_one() -> None:
    """A case rule's sink becomes a sink task after the tool, which runs when the call succeeded:
    only a rule that holds then may give it; another rule's sink is refused with a warning."""
    case = ('case: [{when: "{{ event.name == \'call.error\' }}", '
            'then: {sink: {tool: {kind: duckdb}, table: errors}}}]')
    text = BASE.replace('next: {arcs: [{step: end}]}', case + "\n    next: [{step: end}]")
    assert [t.kind for t in load_playbook_text(text).require().workflow[0].tool] == ["python"]
    warned = problems(text, "warning")
    assert any(p.startswith("pb.yaml:7:") and "sink" in p for p in warned), warned


def test_an_arc_input_that_is_not_a_mapping_beside_with_names_the_arc() -> None:
    text = BASE.replace("next: {arcs: [{step: end}]}", 'next: {arcs: [{step: end, with: {a: 1}, input: "oops"}]}')
    found = problems(text)
    assert found and all(p.startswith("pb.yaml:7:") and "input" in p for p in found), found


def test_a_workbook_task_input_that_is_not_a_mapping_is_judged_as_without_entry_input() -> None:
    """The entry's `input` defaults merge into a task's mapping only; another value is left as it
    is (it was a TypeError reported at 1:1 as an unreadable structure)."""
    entry = '    tool: {kind: python, code: "result = 1", input: "oops"}\nworkflow:'
    alone = BASE.replace("workflow:", "workbook:\n  - name: w\n" + entry)
    with_defaults = BASE.replace("workflow:", "workbook:\n  - name: w\n    input: {a: 1}\n" + entry)
    assert [p.split(": ", 1)[1] for p in problems(with_defaults)] == [p.split(": ", 1)[1] for p in problems(alone)]
    assert not any("cannot read" in p for p in problems(with_defaults))


def test_a_policy_rule_reads_outcome_in_every_template_of_its_actions() -> None:
    """`outcome` (the older spelling of `output`) is the task's envelope in each template of a rule:
    a nested set value, the pipeline's result, a re-run's changed config; a jump's target is a step name."""
    rule = ('spec: {policy: {rules: [{when: "{{ outcome.status == \'ok\' }}", then: {do: jump, to: outcome, '
            'set_ctx: {page: {next: "{{ outcome.result.next }}"}}, result: "{{ outcome.result.items }}", '
            'call: {params: {page: "{{ outcome.result.next }}"}}}}]}}')
    text = BASE.replace('tool: {kind: python, code: "result = 1"}',
                        'tool: {kind: python, code: "result = 1", ' + rule + '}') + "  - step: outcome\n"
    (loaded,) = load_playbook_text(text).require().workflow[0].tool[0].spec.policy.rules  # type: ignore[union-attr]
    assert loaded.then.set == {"ctx.page": {"next": "{{ output.data.next }}"}}
    assert loaded.then.result == "{{ output.data.items }}"
    assert loaded.then.call == {"params": {"page": "{{ output.data.next }}"}}
    assert loaded.then.to == "outcome"


V1_ITERATOR_WITH_SAVES = """\
apiVersion: noetl.io/v1
kind: Playbook
name: t
workflow:
  - step: each
    type: iterator
    collection: [1, 2]
    element: n
    task:
      type: python
      with: {n: "{{ n }}"}
      code: "result = n"
      save: {storage: duckdb, table: per_item, data: {n: "{{ n }}", value: "{{ result }}"}}
    save: {storage: duckdb, table: totals, data: {count: "{{ count }}"}}
    next: [end]
  - step: end
"""


def test_a_v1_iterator_task_save_runs_per_iteration_and_the_step_save_once_after_the_loop() -> None:
    """The task's `save:` is a sink after the task in the loop's pipeline; the step's own `save:`
    is a step of its own that the loop goes on to, and which goes on where the loop went."""
    playbook = load_playbook_text(V1_ITERATOR_WITH_SAVES, "pb.yaml").playbook
    assert playbook is not None
    steps = {s.step: s for s in playbook.workflow}
    assert [s.step for s in playbook.workflow] == ["each", "each_save", "end"]
    loop_tasks = [(t.kind, getattr(t, "table", None) or t.model_extra.get("table")) for t in steps["each"].tool]
    assert loop_tasks == [("python", None), ("sink", "per_item")]
    assert [a.step for a in steps["each"].next.arcs] == ["each_save"]
    assert [t.kind for t in steps["each_save"].tool][-1] == "sink"
    assert steps["each_save"].loop is None
    assert [a.step for a in steps["each_save"].next.arcs] == ["end"]


STEP_WITH_TYPE = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: typed}
workflow:
  - step: start
    type: router
    colour: blue
    next: [{step: work}]
  - step: work
    type: python
    code: "result = 1"
    libs: {}
    mystery: 3
    next: [{step: fetch}]
  - step: fetch
    type: secrets
    provider: env
    secret_name: HOME
    project_id: p
"""


def test_unknown_keys_on_a_step_naming_its_tool_with_type_are_warnings() -> None:
    """SPEC section 14: a key neither the step nor its `type:` tool knows is a warning (an error with
    --strict), not dropped without a word; the tool's own fields beside `type:` are not."""
    warnings = problems(STEP_WITH_TYPE, "warning")
    assert warnings == ["pb.yaml:7:5: unknown key 'colour' in step 'start'",
                        "pb.yaml:13:5: unknown key 'mystery' in step 'work'"]
    assert load_playbook_text(STEP_WITH_TYPE).playbook is not None
    with pytest.raises(PlaybookError, match="colour"):
        load_playbook_text(STEP_WITH_TYPE).require(strict=True)


def test_a_workbook_task_alias_notes_the_newer_spelling() -> None:
    text = BASE.replace('tool: {kind: python, code: "result = 1"}', "tool: {kind: workbook, task: compute}") + (
        "workbook:\n  - name: compute\n    tool: {kind: python, code: 'result = 2'}\n")
    assert "pb.yaml:6:28: workbook `task:`: newer spelling is `name:` (the workbook entry's name)" in \
        problems(text, "note")
    assert load_playbook_text(text).require().workflow[0].tool[0].name == "compute"


def test_a_loop_steps_routing_on_one_iterations_call_is_a_warning() -> None:
    """SPEC section 5: a loop step is routed once, on loop.done; an arc or case rule that asks for
    `event.name == 'call.done'` never fires there, so validation says so at its `when:` line."""
    text = ("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: w}\nworkflow:\n  - step: start\n"
            "    loop: {in: [1, 2], iterator: n}\n    tool: {kind: noop}\n    next:\n      arcs:\n"
            "        - step: b\n          when: \"{{ event.name == 'call.done' }}\"\n"
            "        - step: b\n          when: \"{{ event.name == 'call.done' or event.name == 'loop.done' }}\"\n"
            "  - step: b\n    loop: {in: [1], iterator: x}\n    tool: {kind: noop}\n    case:\n"
            "      - when: \"{{ event.name == 'call.error' and error.kind == 'x' }}\"\n"
            "        then: {next: [{step: c}]}\n"
            "      - when: \"{{ event.name == 'call.done' }}\"\n        then: {retry: {max_attempts: 2}}\n"
            "  - step: c\n")
    warnings = problems(text, "warning")
    assert [w.split(": this condition")[0] for w in warnings] == ["pb.yaml:11:11: step 'start'", "pb.yaml:18:9: step 'b'"]
    assert "asks for call.error, but a loop step is routed once" in warnings[1]


def test_unknown_keys_in_a_call_and_a_flat_workbook_entry_are_warnings() -> None:
    text = ("apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: c}\nworkbook:\n  - name: wb\n"
            "    type: python\n    code: 'result = 1'\n    colr: red\nworkflow:\n  - step: start\n"
            "    call: {type: workbook, name: wb, wiht: {a: 1}}\n    next: [{step: two}]\n"
            "  - step: two\n    call: {type: playbooks, path: x/y, with: {}, retrun_step: z}\n")
    assert problems(text, "warning") == [
        "pb.yaml:11:38: unknown key 'wiht' in step 'start' call (did you mean 'with'?)",
        "pb.yaml:14:50: unknown key 'retrun_step' in step 'two' call (did you mean 'return_step'?)",
        "pb.yaml:8:5: unknown key 'colr' in workbook entry 'wb'"]


KEYCHAIN = BASE.replace("workflow:\n", "keychain:\n  - name: api\n    kind: bearer\n    token: t\nworkflow:\n", 1)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("kind: bearer", "kind: barer"),
         "pb.yaml:6:5: keychain entry 'api': unknown keychain kind 'barer' (did you mean 'bearer'?)"),
        (("kind: bearer", "kind: vault"),
         "pb.yaml:6:5: keychain entry 'api': unknown keychain kind 'vault' "
         "(credential, bearer, static, secret_manager, oauth2)"),
        (("  - name: api\n    kind", "  - kind"), "pb.yaml:5:5: every keychain entry needs a `name`"),
    ],
)
def test_keychain_entries_that_would_fail_the_run_are_validation_errors(change: tuple[str, str], expected: str) -> None:
    assert problems(KEYCHAIN) == []
    assert expected in problems(KEYCHAIN.replace(*change))


def test_keychain_kinds_written_as_templates_or_older_names_are_left_to_the_run() -> None:
    assert problems(KEYCHAIN.replace("kind: bearer", "kind: \"{{ workload.kind }}\"")) == []
    assert problems(KEYCHAIN.replace("kind: bearer", "type: secret")) == []


def test_a_simple_retry_block_retries_only_when_its_when_holds() -> None:
    text = """
apiVersion: noetl.io/v1
metadata: {name: simple_retry}
workflow:
  - step: start
    type: python
    code: "raise ValueError('x')"
    retry: {when: "{{ error.kind == 'rate_limit' }}", max_attempts: 3}
"""
    rule = load_playbook_text(text).require().step_map()["start"].tool[0].spec.policy.rules[0]  # type: ignore[union-attr]
    assert rule.when == "{{ output.status == 'error' and (error.kind == 'rate_limit') }}"
    assert rule.then.do == "retry" and rule.then.attempts == 3
