"""Templates: sandboxed, strict, native values, mapping keys before attributes, `when` truthiness."""

from __future__ import annotations

import pytest

from noetl.dsl.render import RenderContext, render_data, render_value, truthy
from noetl.errors import TemplateError

CTX = RenderContext({"response": {"data": {"items": [1, 2], "keys": "k"}}, "n": 3, "name": "x", "flag": True})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ n }}", 3),
        ("{{ flag }}", True),
        ("{{ response.data.items }}", [1, 2]),  # the key, not dict.items
        ("{{ response.data.keys }}", "k"),
        ("n={{ n }}", "n=3"),
        ("{{ missing | default('d') }}", "d"),
        ("{{ missing is defined }}", False),
        ("{{ {'a': 1} | tojson }}", '{"a": 1}'),
        ("{{ '{\"a\": 2}' | fromjson }}", {"a": 2}),
        ("{{ 'hi' | b64encode | b64decode }}", "hi"),
        ("{{ none_value }}", None),
        ("plain text", "plain text"),
    ],
)
def test_render(source: str, expected: object) -> None:
    ctx = CTX.child({"none_value": None})
    assert render_value(source, ctx) == expected


def test_undefined_names_the_variable_and_place() -> None:
    with pytest.raises(TemplateError, match="step 's' input.v: 'nope' is undefined"):
        render_data({"v": "{{ nope }}"}, CTX, where="step 's' input")


def test_sandbox_blocks_python_internals() -> None:
    with pytest.raises(TemplateError):
        render_value("{{ name.__class__.__mro__[1].__subclasses__() }}", CTX)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("", False), ("false", False), ("FALSE", False), ("0", False), ("no", False),
     ("None", False), ("yes", True), ("1", True), (0, False), (2, True), (None, False), ([], False)],
)
def test_when_truthiness(value: object, expected: bool) -> None:
    assert truthy(value) is expected


def test_v1_data_habit_resolves_through_missing_data_key() -> None:
    assert render_value("{{ step.data.field }}", RenderContext({"step": {"field": 7}})) == 7


def test_missing_key_named_like_a_dict_method_is_undefined_but_still_callable() -> None:
    ctx = RenderContext({"iter": {}, "d": {"a": 1}})
    assert render_value("{{ iter.items | default([]) }}", ctx) == []
    assert render_value("{{ iter.keys is defined }}", ctx) is False
    assert render_value("{{ d.items() | list }}", ctx) == [("a", 1)]
    assert render_value("{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}", ctx) == "a=1"
    with pytest.raises(TemplateError, match="unsafe"):
        render_value("{{ d.update({'b': 2}) }}", ctx)
