"""The one backoff rule (task retry policies and the runtime's reconnects)."""

from __future__ import annotations

import pytest

from noetl.backoff import backoff_delay


@pytest.mark.parametrize(
    ("backoff", "attempt", "max_delay", "expected"),
    [
        ("none", 3, None, 0.5),
        ("linear", 3, None, 1.5),
        ("linear", 2, 10, 1.0),
        ("exponential", 1, None, 0.5),
        ("exponential", 3, None, 2.0),
        ("exponential", 3, 1.2, 1.2),
        # Any other name is a constant delay: real playbooks write `fixed` and `constant`.
        ("fixed", 4, None, 0.5),
        ("constant", 7, None, 0.5),
        ("FIXED", 2, None, 0.5),
    ],
)
def test_backoff_delay_by_name(backoff: str, attempt: int, max_delay: float | None, expected: float) -> None:
    assert backoff_delay(attempt, delay=0.5, backoff=backoff, max_delay=max_delay) == pytest.approx(expected)


def test_a_huge_attempt_number_stays_finite_and_capped() -> None:
    assert backoff_delay(100_000, delay=0.1, backoff="exponential", max_delay=5.0) == 5.0


def test_a_negative_delay_is_no_delay() -> None:
    assert backoff_delay(1, delay=-3, backoff="linear") == 0.0
