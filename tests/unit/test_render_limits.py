"""Template bombs: bounded evaluation, never a hang, and validation never evaluates a template.

Every test here hung (or ran out of memory) before evaluation was bounded; the timeout turns a
regression into a failure instead of a stuck run.
"""

from __future__ import annotations

import time

import pytest

from noetl.dsl.render import RenderContext, check_template, render_value
from noetl.dsl.render_env import time_limit
from noetl.errors import TemplateError

CTX = RenderContext({"n": 3})

BOMBS = [
    ("{{ (9**9)**(9**9) }}", "bits"),
    ("{{ 'x' * 2000000000 }}", "long"),
    ("{{ [1] * 2000000000 }}", "long"),
    ("{{ '{:>999999999}'.format(1) }}", "format width"),
    ("{{ '%999999999d' % 1 }}", "format width"),
    ("{{ '%999999999d' | format(1) }}", "format width"),
    ("{{ 'x' | center(999999999) }}", "width"),
    ("{{ 'x'.ljust(999999999) }}", "width"),
    ("{{ range(10**9) | list }}", "range"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "operations"),
    ("{% set s = 'x' * 9000000 %}{{ s ~ s ~ s }}", "long"),
    ("{% set s = 'x' * 9000000 %}{{ [s, s] | join }}", "long"),
    ("{{ ('x' * 9000000).replace('x', 'yy') }}", "long"),
    ("{{ [1, 2] | batch(999999999, 0) | list }}", "padded batch"),
    ("{{ [1] | slice(999999999) | list }}", "slices"),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("source", "says"), BOMBS)
def test_a_template_bomb_is_a_clear_error(source: str, says: str) -> None:
    started = time.perf_counter()
    with pytest.raises(TemplateError) as caught:
        render_value(source, CTX, where="step 's' input.v")
    message = str(caught.value)
    assert message.startswith("step 's' input.v: ") and says in message and "\n" not in message
    assert time.perf_counter() - started < 5


@pytest.mark.timeout(10)
def test_validation_does_not_fold_unbounded_constants() -> None:
    started = time.perf_counter()
    assert check_template("{{ (9**9)**(9**9) }}") is None  # it parses; evaluating it is the run's business
    assert check_template("{{ 'x' * 2000000000 }}") is None
    assert time.perf_counter() - started < 2


def test_ordinary_arithmetic_and_strings_still_work() -> None:
    assert render_value("{{ 2 ** 64 }}", CTX) == 2**64
    assert render_value("{{ 'ab' * n }}", CTX) == "ababab"
    assert render_value("{{ '%05d' % n }}", CTX) == "00003"
    assert render_value("{{ '{:>4}'.format(n) }}", CTX) == "   3"
    assert render_value("{{ range(3) | list }}", CTX) == [0, 1, 2]
    assert render_value("{{ range(3) | reverse | list }}", CTX) == [2, 1, 0]
    assert render_value("{{ ['a', 'b'] | join('-') }}", CTX) == "a-b"
    assert render_value("{{ 'a' ~ n }}", CTX) == "a3"
    assert render_value("{{ [1, 2, 3] | batch(2, 0) | list }}", CTX) == [[1, 2], [3, 0]]
    assert render_value("{{ [1, 2, 3] | slice(2) | list }}", CTX) == [[1, 2], [3]]


@pytest.mark.timeout(20)
def test_a_render_stops_at_its_time_limit() -> None:
    ticks = iter(range(1_000_000))  # a clock that moves one second each time it is read

    def clock() -> float:
        return float(next(ticks))

    slow = "{% for i in range(100000) %}{{ i }}{% endfor %}"
    with time_limit(clock, 5), pytest.raises(TemplateError, match="longer than 5 s"):
        render_value(slow, CTX)
    assert len(render_value(slow, CTX)) > 100000  # without a time limit it renders
