"""Secret-bearing step results: the log's redacted copy plus the result sealed with the credential key."""

from __future__ import annotations

from datetime import datetime

import pytest

from noetl.credentials import forget_cached_keys
from noetl.engine.events import Event
from noetl.runtime.execution import stamp
from noetl.runtime.sealing import SEALED_RESULT, hidden_values, unsealed, unsealed_log
from noetl.secrets import Redactor

SECRET = "tok-unit-sealed-0123456789"


@pytest.fixture(autouse=True)
def _fresh_keys():  # type: ignore[no-untyped-def]
    forget_cached_keys()
    yield
    forget_cached_keys()


def _stamped() -> Event:
    event = Event("1", "call.done", "start", "done", result={"token": SECRET, "n": 1})
    return stamp([event], datetime(2026, 1, 1), Redactor([SECRET]))[0]


@pytest.mark.parametrize("key", ["a passphrase shared by server and workers",
                                 "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg="], ids=["passphrase", "fernet-key"])
def test_the_log_copy_is_redacted_and_a_rebuild_reads_the_result(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", key)
    event = _stamped()
    assert event.result == {"token": "***", "n": 1}
    assert SECRET not in repr(event.to_dict())
    assert unsealed(event).result == {"token": SECRET, "n": 1}
    assert event.result == {"token": "***", "n": 1}  # the stored event is left as it is


def test_a_result_without_a_secret_is_not_sealed() -> None:
    event = Event("1", "call.done", "start", "done", result={"n": 1})
    stamp([event], datetime(2026, 1, 1), Redactor([SECRET]))
    assert SEALED_RESULT not in event.meta and unsealed(event) is event


def test_another_key_reads_the_redacted_result(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", "the first key")
    event = _stamped()
    monkeypatch.setenv("NOETL_SECRET_KEY", "another key")
    forget_cached_keys()
    assert unsealed(event).result == {"token": "***", "n": 1}
    assert "sealed with another key" in caplog.text and SECRET not in caplog.text


def test_a_rerun_reads_the_log_unsealed_and_learns_what_its_redaction_hid(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reused step does not run again to tell the rerun's redactor its secret: the log does."""
    monkeypatch.setenv("NOETL_SECRET_KEY", "a passphrase shared by server and workers")
    plain = Event("1", "step.exit", "plain", "completed", result={"n": 1})
    opened, hidden = unsealed_log([_stamped(), plain])
    assert opened[0].result == {"token": SECRET, "n": 1} and opened[1] is plain
    assert hidden == {SECRET}
    assert Redactor(hidden).redact(opened[0].result) == {"token": "***", "n": 1}


def test_hidden_values_are_the_changed_leaves_or_the_whole_part_whose_shape_changed() -> None:
    assert hidden_values({"url": f"http://{SECRET}/x", "same": "a", "list": ["b", SECRET]},
                         {"url": "http://***/x", "same": "a", "list": ["b", "***"]}) == [SECRET, SECRET]
    assert hidden_values({SECRET: {"inner": "value-1"}}, {"***": {"inner": "value-1"}}) == ["value-1"]


@pytest.mark.parametrize(("original", "redacted", "hidden"), [
    ("http://db-host-7f3a:8080/v1", "http://***:8080/v1", ["db-host-7f3a"]),
    ("a tok-1234 b tok-1234", "a *** b ***", ["tok-1234", "tok-1234"]),
    ("p:pw12pw34:q", "p:******:q", ["p:pw12pw34:q"]),  # two secrets side by side: which is which is unknown
    ("ab-cd", "ab***", ["ab-cd"]),  # "-cd" is too short for a redactor to learn: the whole text
], ids=["inside", "twice", "adjacent", "short"])
def test_the_hidden_value_is_what_the_stars_stand_for_or_the_whole_text(original: str, redacted: str,
                                                                       hidden: list[str]) -> None:
    """A rebuilding process learns the secret itself, so it redacts as the process that found it did."""
    assert hidden_values(original, redacted) == hidden
    assert Redactor(hidden).redact(original) == (redacted if hidden != [original] else "***")


@pytest.mark.parametrize("value", [
    "a plain line", "the token is hunter2-secret-value", {"k": "v"}, {"hunter2-secret-value": 1},
    {"nested": [{"deep": ("x", "postgresql://u:hunter2-secret-value@h/db")}]}, [1, 2.5, None, True],
    {"n": 12345678901234567890}, None, 42,
])
def test_finds_secret_says_whether_redact_would_change_the_value(value: object) -> None:
    """stamp and seal_commands skip the redacted copy when finds_secret says there is nothing to hide."""
    redactor = Redactor(["hunter2-secret-value"])
    assert redactor.finds_secret(value) == (redactor.redact(value) != value)
