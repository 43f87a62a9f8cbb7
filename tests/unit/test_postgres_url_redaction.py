"""The PostgreSQL URL that NoETL's connection errors name never shows its password."""

from __future__ import annotations

from noetl.secrets import redact_connection_secrets
from noetl.store.postgres.store import redact_url


def test_a_password_in_the_user_part_is_hidden() -> None:
    assert redact_url("postgresql://noetl:s3cret@db:5432/noetl") == "postgresql://noetl:***@db:5432/noetl"


def test_a_password_given_as_libpq_query_parameter_is_hidden() -> None:
    shown = redact_url("postgresql://noetl@db/noetl?sslmode=require&password=s3cret")
    assert shown == "postgresql://noetl@db/noetl?sslmode=require&password=***"
    assert "s3cret" not in redact_url("postgresql://db/noetl?PASSWORD=s3cret&application_name=w")


def test_a_url_without_a_password_is_shown_as_written() -> None:
    assert redact_url("postgresql://noetl@127.0.0.1:5432/noetl") == "postgresql://noetl@127.0.0.1:5432/noetl"
    assert redact_url("postgresql://127.0.0.1/noetl") == "postgresql://127.0.0.1/noetl"


def test_blanking_a_message_twice_keeps_what_follows_the_url() -> None:
    message = f"cannot connect to PostgreSQL at {redact_url('postgresql://u@h/db?password=s3cret')}: refused"
    assert redact_connection_secrets(message) == "cannot connect to PostgreSQL at postgresql://u@h/db?password=***: refused"
