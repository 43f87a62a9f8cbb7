"""Templates: sandboxed, lenient with warnings or strict, native values, keys before attributes, truthiness."""

from __future__ import annotations

import pytest

from noetl.dsl.render import RenderContext, evaluate_when, render_data, render_value, tracing, truthy
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


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ nope }}", None),  # the whole value: null
        ("{{ nope.deeper.still }}", None),  # chains
        ("{{ response.data.nothing.here }}", None),  # a missing key of a real mapping chains too
        ("v={{ nope }}", "v="),  # inside a string: ""
        ("{{ nope | default('d') }}", "d"),
        ("{{ nope.x | default('d') }}", "d"),
        ("{{ nope.x is defined }}", False),
        ("{{ 'yes' if nope else 'no' }}", "no"),  # falsy
        ("{{ nope == 'a' }}", False),
        ("{{ [nope, 1] }}", [None, 1]),  # never an undefined object inside a native value
        ("{{ {'k': nope} }}", {"k": None}),
        ("{{ nope | tojson }}", "null"),
    ],
)
def test_undefined_names_are_lenient(source: str, expected: object) -> None:
    assert render_value(source, CTX) == expected


def test_each_render_that_uses_an_undefined_name_records_one_warning() -> None:
    with tracing("s") as trace:
        render_data({"v": "{{ nope }}", "w": "{{ nope }}{{ nope }}", "d": "{{ nope | default(1) }}"}, CTX,
                    where="step 's' input")
    assert [(w["step"], w["field"], w["name"]) for w in trace.warnings] == [("s", "input.v", "nope"),
                                                                            ("s", "input.w", "nope")]
    assert trace.warnings[0]["template"] == "{{ nope }}"
    assert "'nope' is undefined" in trace.warnings[0]["message"] and "{{ nope }}" in trace.warnings[0]["message"]


def test_a_condition_on_an_undefined_name_is_false_and_warns() -> None:
    with tracing("s") as trace:
        assert evaluate_when("{{ later.value == 1 }}", CTX, where="step 's' arc to 'x' when") is False
        assert evaluate_when("{{ later }}", CTX, where="step 's' arc to 'y' when") is False
    assert [w["field"] for w in trace.warnings] == ["arc to 'x' when", "arc to 'y' when"]


def test_strict_mode_makes_an_undefined_name_an_error_naming_template_and_variable() -> None:
    with tracing("s", strict=True), pytest.raises(TemplateError) as caught:
        render_data({"v": "{{ nope }}"}, CTX, where="step 's' input")
    assert str(caught.value) == "step 's' input.v: 'nope' is undefined in '{{ nope }}'"
    with tracing("s", strict=True):  # explicit handling stays allowed
        assert render_value("{{ nope.x | default(2) }}", CTX) == 2
        assert render_value("{{ nope is defined }}", CTX) is False


def test_arithmetic_on_an_undefined_name_is_an_error_even_when_lenient() -> None:
    with pytest.raises(TemplateError, match="'nope' is undefined"):
        render_value("{{ nope.x > 1 }}", CTX)


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


def test_v1_result_habit_is_a_names_own_result_not_a_key_deeper_down() -> None:
    """`{{ greet.result.data }}` (v1) reads step greet's result itself; a `result` key missing
    deeper down (a JSON-RPC error reply: `rpc.data.result`) stays undefined, as in any template:
    it read the whole reply, so `is defined` took the error for a result."""
    reply = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "Method not found"}}
    ctx = RenderContext({"greet": {"data": {"message": "hi"}}, "rpc": {"status_code": 200, "data": reply},
                         "listing": [10, 20], "squares": {"results": [1, 4], "stats": {"total": 2}}})
    assert render_value("{{ greet.result.data.message }}", ctx) == "hi"
    assert render_value("{{ listing.result | length }}", ctx) == 2
    assert render_value("{{ squares.result }}", ctx) == [1, 4]
    assert render_value("{{ rpc.data.result is defined }}", ctx) is False
    assert render_value("{{ rpc.data.result | default('none') }}", ctx) == "none"
    assert render_value("{{ rpc.data.error.code }}", ctx) == -32601
    assert render_value("{{ rpc.data.data.error.code }}", ctx) == -32601  # `.data` as the spec says


def test_missing_key_named_like_a_dict_method_is_undefined_but_still_callable() -> None:
    ctx = RenderContext({"iter": {}, "d": {"a": 1}})
    assert render_value("{{ iter.items | default([]) }}", ctx) == []
    assert render_value("{{ iter.keys is defined }}", ctx) is False
    assert render_value("{{ d.items() | list }}", ctx) == [("a", 1)]
    assert render_value("{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}", ctx) == "a=1"
    with pytest.raises(TemplateError, match="unsafe"):
        render_value("{{ d.update({'b': 2}) }}", ctx)
