"""Secret values never leave NoETL: the Redactor and connection-string redaction."""

from __future__ import annotations

from noetl.secrets import Redactor, redact_connection_secrets, sensitive_values


def test_redacts_every_occurrence_at_any_depth() -> None:
    redactor = Redactor(["s3cr3t-value"])
    event = {
        "result": {"rows": [{"note": "pw is s3cr3t-value!"}], "list": ["s3cr3t-value", 7, None, True]},
        "error": "auth failed for s3cr3t-value and s3cr3t-value",
        "tuple": ("s3cr3t-value",),
    }
    assert redactor.redact(event) == {
        "result": {"rows": [{"note": "pw is ***!"}], "list": ["***", 7, None, True]},
        "error": "auth failed for *** and ***",
        "tuple": ("***",),
    }


def test_original_value_is_not_modified() -> None:
    data = {"a": ["token-12345"]}
    Redactor(["token-12345"]).redact(data)
    assert data == {"a": ["token-12345"]}


def test_longest_secret_is_replaced_first() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.redact("x abcdefgh y abcd") == "x *** y ***"


def test_very_short_values_are_ignored() -> None:
    redactor = Redactor(["abc", "ok", ""])
    assert not redactor
    assert redactor.redact("abc ok") == "abc ok"


def test_secrets_can_be_added_later_and_regex_characters_are_literal() -> None:
    redactor = Redactor()
    assert redactor.redact("a.b*c+d") == "a.b*c+d"
    redactor.add("a.b*c+d")
    assert redactor.redact("see a.b*c+d and aXb*c+d") == "see *** and aXb*c+d"


def test_structured_secrets_contribute_each_string_and_number() -> None:
    redactor = Redactor([{"user": "service-account", "nested": {"pin": 123456}}])
    assert redactor.redact("service-account uses 123456") == "*** uses ***"


def test_percent_encoded_form_is_redacted_too() -> None:
    redactor = Redactor(["p@ss word/1"])
    assert redactor.redact("postgresql://u:p%40ss%20word%2F1@h/db") == "postgresql://u:***@h/db"


def test_dict_keys_are_redacted() -> None:
    assert Redactor(["key-material"]).redact({"key-material": 1}) == {"***": 1}


def test_connection_strings_lose_their_passwords() -> None:
    assert redact_connection_secrets("host=h password=hunter2 dbname=d") == "host=h password=*** dbname=d"
    assert redact_connection_secrets("password = 'with space' user=u") == "password = *** user=u"
    assert (
        redact_connection_secrets('at "postgresql://bob:hunter2@db:5432/x"')
        == 'at "postgresql://bob:***@db:5432/x"'
    )
    assert redact_connection_secrets("no secrets here") == "no secrets here"


def test_only_secret_looking_credential_fields_are_sensitive() -> None:
    data = {
        "host": "db",
        "user": "app",
        "password": "pw-1",
        "api_key": "k-2",
        "extra": {"client_secret": "c-3"},
    }
    assert sorted(sensitive_values(data)) == ["c-3", "k-2", "pw-1"]
