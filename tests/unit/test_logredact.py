"""Log records of any logger (NoETL's, libraries', uvicorn's) are redacted before any handler sees them."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from noetl.logredact import install_log_redaction
from noetl.secrets import SecretResolver


@pytest.mark.parametrize("logger_name", ["httpx", "uvicorn.error", "noetl.worker"])
def test_records_of_every_logger_are_redacted(logger_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_API_TOKEN", "token-from-the-settings")
    install_log_redaction()
    SecretResolver().record("value-an-execution-resolved")  # as a keychain entry does
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "propagate", False)
    previous_level = logger.level
    logger.setLevel(logging.INFO)  # setLevel, not the attribute: it also clears the loggers' level cache
    try:
        logger.info("GET https://api.example/x?api_key=%s", "value-an-execution-resolved")
        logger.warning("token %s, url %s", "token-from-the-settings", "postgresql://u:hunter22@db/x")
        try:
            raise ValueError("failed with value-an-execution-resolved")
        except ValueError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    text = stream.getvalue()
    assert "api_key=***" in text and "token ***" in text and "u:***@db" in text
    assert "ValueError: failed with ***" in text
    for secret in ("value-an-execution-resolved", "token-from-the-settings", "hunter22"):
        assert secret not in text


def test_tokens_of_the_token_file_are_secret_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from noetl.settings import sensitive_setting_values

    listed = tmp_path / "tokens.yaml"
    listed.write_text("- {name: ci, token: token-from-a-list, role: execute}\n")
    monkeypatch.setenv("NOETL_API_TOKENS_FILE", str(listed))
    monkeypatch.setenv("NOETL_API_TOKENS", "pair-token-one=read,pair-token-two=admin")
    values = sensitive_setting_values()
    assert {"token-from-a-list", "pair-token-one", "pair-token-two"} <= set(values)
    assert str(listed) not in values and "read" not in values and "admin" not in values
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("token-from-a-mapping: read\n")
    monkeypatch.setenv("NOETL_API_TOKENS_FILE", str(mapping))
    assert "token-from-a-mapping" in sensitive_setting_values()


def test_secret_settings_follow_their_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The values are remembered between calls (every execution's redactor starts from them): a
    # token file rewritten, a credential key generated or removed after a first call still count.
    from noetl.settings import sensitive_setting_values

    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("first-token-value: read\n")
    monkeypatch.setenv("NOETL_HOME", str(tmp_path))
    monkeypatch.setenv("NOETL_API_TOKENS_FILE", str(tokens))
    assert "first-token-value" in sensitive_setting_values()
    tokens.write_text("second-token-value-longer: read\n")
    (tmp_path / "secret.key").write_text("generated-key-value\n")
    values = sensitive_setting_values()
    assert "second-token-value-longer" in values and "first-token-value" not in values
    assert "generated-key-value" in values
    (tmp_path / "secret.key").unlink()
    assert "generated-key-value" not in sensitive_setting_values()
    monkeypatch.setenv("NOETL_EXTRA_PASSWORD", "password-set-later")
    assert "password-set-later" in sensitive_setting_values()


@pytest.mark.timeout(60)
def test_a_long_line_without_spaces_is_redacted_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Blanking `scheme://user:password@` tried a scheme from every letter of a word: a request path
    # or an error message of 100 KB of letters cost minutes of CPU in the log record factory.
    install_log_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("uvicorn.access")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "propagate", False)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        logger.info("GET /%s %s", "a" * 100_000, "a://u:x" * 20_000 + " postgresql://u:hunter22@db/x")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    text = stream.getvalue()
    assert "u:***@db" in text and "hunter22" not in text
    assert "a" * 100_000 in text
