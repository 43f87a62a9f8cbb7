"""ErrorInfo: the one shape of a recorded error, built from each exception family and read back."""

from __future__ import annotations

import json

import pytest

from noetl.errors import ErrorInfo, InputError, PlaybookError, TemplateError, ToolError
from noetl.runtime.report import crash_outcome


def test_a_tool_error_keeps_its_kind_retryable_and_details_in_the_recorded_order():
    exc = ToolError("HTTP 503", kind="http", retryable=True,
                    details={"http": {"status": 503, "headers": {}}, "data": "busy"})

    recorded = ErrorInfo.from_exception(exc).to_dict()

    assert json.dumps(recorded) == json.dumps({"kind": "http", "message": "HTTP 503", "retryable": True,
                                               "http": {"status": 503, "headers": {}}, "data": "busy"})
    assert exc.to_dict() == recorded


def test_a_python_error_keeps_its_code_line_and_records_the_playbook_line_last():
    exc = ToolError("ZeroDivisionError: division by zero", kind="ZeroDivisionError",
                    details={"line": 3, "traceback": "..."})

    info = ErrorInfo.from_exception(exc)
    assert info.line is None  # where in the playbook file is found later, from the playbook's text
    located = info.at_line(12)

    assert located.line == 12
    assert list(located.to_dict()) == ["kind", "message", "retryable", "line", "traceback", "playbook_line"]
    assert located.to_dict()["line"] == 3 and located.to_dict()["playbook_line"] == 12
    assert ErrorInfo.from_dict(located.to_dict()) == located


def test_a_null_line_is_recorded_as_it_was():
    recorded = {"kind": "SystemExit", "message": "SystemExit: 1", "retryable": False, "line": None,
                "traceback": "t"}

    assert json.dumps(ErrorInfo.from_dict(recorded).to_dict()) == json.dumps(recorded)


def test_a_template_error_is_kind_template_and_not_retryable():
    assert ErrorInfo.from_exception(TemplateError("step 'a' input: 'x' is undefined")).to_dict() == {
        "kind": "template", "message": "step 'a' input: 'x' is undefined", "retryable": False}


@pytest.mark.parametrize("exc", [InputError("bad input"), PlaybookError("bad playbook")])
def test_any_other_noetl_error_is_kind_error_with_its_own_message(exc):
    assert ErrorInfo.from_exception(exc).to_dict() == {"kind": "error", "message": str(exc), "retryable": False}


def test_an_exception_noetl_did_not_raise_is_named_by_its_class():
    info = ErrorInfo.from_exception(KeyError("missing"))

    assert info.to_dict() == {"kind": "KeyError", "message": "KeyError: 'missing'", "retryable": False}
    assert crash_outcome(KeyError("missing")).error == info.to_dict()


def test_fields_left_unset_are_absent_as_in_errors_recorded_before():
    assert json.dumps(ErrorInfo("cancelled", "cancelled by request").to_dict()) == \
        '{"kind": "cancelled", "message": "cancelled by request"}'
    assert ErrorInfo("error", retryable=False).to_dict() == {"kind": "error", "retryable": False}


@pytest.mark.parametrize("recorded", [
    {"kind": "timeout", "message": "timed out after 1 s", "retryable": True},
    {"kind": "lease_expired", "message": "m", "retryable": False},
    {"kind": "cancelled", "message": "cancelled by request"},
    {"kind": "ValueError", "message": "ValueError: x", "retryable": False, "line": 2, "traceback": "t",
     "playbook_line": 14},
    {"kind": "http", "message": "m", "retryable": True, "http": {"status": 500, "headers": {}}, "data": None,
     "notes": ["routing the failure: boom"]},
])
def test_an_error_read_back_from_an_event_records_byte_for_byte_the_same(recorded):
    assert json.dumps(ErrorInfo.from_dict(recorded).to_dict()) == json.dumps(recorded)


def test_a_note_is_appended_without_changing_the_error_it_was_added_to():
    first = ErrorInfo.from_dict({"kind": "http", "message": "m", "retryable": True, "notes": ["one"]})

    second = first.with_note("two")

    assert second.to_dict()["notes"] == ["one", "two"]
    assert first.to_dict()["notes"] == ["one"]
    assert second.kind == "http" and second.retryable is True


def test_an_error_re_raised_as_a_tool_error_records_the_same():
    recorded = {"kind": "ValueError", "message": "ValueError: x", "retryable": True, "line": 4, "traceback": "t",
                "playbook_line": 9}

    exc = ErrorInfo.from_dict(recorded).to_exception()

    assert isinstance(exc, ToolError)
    assert exc.to_dict() == recorded


def test_error_info_is_immutable():
    info = ErrorInfo("timeout", "m", True)
    with pytest.raises(AttributeError):
        info.kind = "other"  # type: ignore[misc]
