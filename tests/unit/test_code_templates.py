"""Rewriting templates in python code into input bindings (noetl migrate)."""

from __future__ import annotations

import pytest

from noetl.dsl.code_templates import python_code_warnings, unrender_code

KNOWN = {"temp", "city", "fetch", "who"}


@pytest.mark.parametrize(
    ("code", "expected_code", "bindings"),
    [
        ("x = {{ temp }}", "x = temp", {"temp": "{{ temp }}"}),
        ("x = '{{ city }}'", "x = str(city)", {"city": "{{ city }}"}),
        ("x = 'at {{ city }}!'", "x = ('at ' + str(city) + '!')", {"city": "{{ city }}"}),
        ("x = {{ fetch.data.temp }}", "x = fetch_data_temp", {"fetch_data_temp": "{{ fetch.data.temp }}"}),
        ("x = {{ temp | int }} + {{ temp | int }}", "x = value_1 + value_1", {"value_1": "{{ temp | int }}"}),
        ("x = r'\\d {{ who }}'", "x = (r'\\d ' + str(who))", {"who": "{{ who }}"}),
        ("x = {{ temp }}  # '{{ city }}' in a comment", "x = temp  # '{{ city }}' in a comment",
         {"temp": "{{ temp }}"}),
    ],
)
def test_templates_become_input_bindings(code: str, expected_code: str, bindings: dict[str, str]) -> None:
    assert unrender_code(code, {}, KNOWN) == (expected_code, bindings)


def test_an_existing_binding_of_the_same_template_is_reused_and_a_clash_renamed() -> None:
    assert unrender_code("a = {{ temp }}", {"temp": "{{ temp }}"}, KNOWN) == ("a = temp", {})
    assert unrender_code("a = {{ temp }}", {"temp": 5}, KNOWN) == ("a = temp_1", {"temp_1": "{{ temp }}"})


@pytest.mark.parametrize("code", [
    "x = 1",  # nothing to do
    "{% for i in x %}{{ i }}{% endfor %}",  # statements: not expressible as bindings
    "x = b'{{ temp }}'",  # bytes
    "x = '{{ unknown }}'",  # not a context name: left as written
])
def test_code_that_is_left_as_written(code: str) -> None:
    assert unrender_code(code, {}, KNOWN) is None


def test_only_context_names_are_warned_about() -> None:
    doc = {"workload": {"temp": 1}, "workflow": [
        {"step": "start", "tool": [{"kind": "python", "code": "x = {{ temp }}; y = '{{ other }}'"}]},
        {"step": "second", "tool": [{"kind": "python", "code": "x = '{{ other }}'"}]},
    ]}
    warnings = python_code_warnings(doc)
    assert [path for path, _ in warnings] == [("workflow", 0, "tool", "code")]
    assert "{{ temp }}" in warnings[0][1] and "other" not in warnings[0][1]


def test_one_warning_names_every_context_name_the_code_templates() -> None:
    doc = {"workload": {"temp": 1, "who": "Ada"}, "workflow": [
        {"step": "start", "tool": [{"kind": "python",
                                    "code": "t = {{ temp }}\nm = 'Hello {{ who }}'\nu = {{ temp }} + 1\nx = '{{ other }}'"}]},
    ]}
    [(_, message)] = python_code_warnings(doc)
    assert "so {{ temp }} stays as written" in message
    assert "(likewise {{ who }}; `noetl migrate` rewrites it so)" in message
    assert "other" not in message
