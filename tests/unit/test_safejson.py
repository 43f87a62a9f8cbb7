"""Strict JSON values (noetl.safejson.check_value): a quick walk for the values that pass, and the
walk that names the place for the ones that do not, which must agree on every value."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noetl.errors import InputError
from noetl.limits import MAX_DEPTH
from noetl.safejson import _check_naming_the_place, check_value


def _nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


class Text(str):
    """A str subclass: only the walk that names the place judges it."""


@pytest.mark.parametrize(("value", "message"), [
    ({"items": [0] * 1000 + [float("nan")]}, "$.items[1000]: NaN and Infinity are not JSON numbers"),
    ({"a": [1, True, None, "ok", "x\x00"]}, "$.a[4]: NUL characters (\\u0000) cannot be stored"),
    ({"k\ud800": 1}, "a lone UTF-16 surrogate is not valid text"),
    ([{"deep": "é\ud800"}], "$[0].deep: a lone UTF-16 surrogate is not valid text"),
    (float("-inf"), "$: NaN and Infinity are not JSON numbers"),
    (Text("x\x00"), "NUL characters"),
    (_nested(MAX_DEPTH), f"nested more than {MAX_DEPTH} levels deep"),
])
def test_what_cannot_be_stored_is_refused_naming_the_place(value: Any, message: str) -> None:
    with pytest.raises(InputError) as refused:
        check_value(value, "body")
    assert message in str(refused.value)


@pytest.mark.parametrize("value", [
    {"items": [0, 1.5, True, None, "é", "🔥"] * 1000}, _nested(MAX_DEPTH - 1), {1: "a key that is no text"},
    [Text("ok")], "", 0,
])
def test_what_can_be_stored_passes(value: Any) -> None:
    check_value(value, "body")


_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.just("\x00"),
                    st.just("\ud800"))
_values = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=3) | st.just("\ud800"), inner, max_size=4), max_leaves=30)


@settings(max_examples=100, deadline=None)
@given(_values)
def test_the_quick_walk_refuses_exactly_what_the_naming_walk_refuses(value: Any) -> None:
    def outcome(check: Any) -> str | None:
        try:
            check(value, "v")
        except InputError as exc:
            return str(exc)
        return None

    assert outcome(check_value) == outcome(_check_naming_the_place)
