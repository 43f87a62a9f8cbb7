"""Settings: every NOETL_* variable read when used, a bad value as one clear line, and the doc page
generated from the fields."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from noetl.errors import InputError
from noetl.settings import READERS, Settings, load_settings, variable_name
from noetl.settings_doc import render

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_derived_paths(monkeypatch, tmp_path):
    for name in [variable_name(setting.name) for setting in fields(Settings)]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    settings = load_settings()

    assert settings.home == tmp_path / ".noetl"
    assert settings.sqlite_path == tmp_path / ".noetl" / "noetl.db"
    assert settings.result_dir == tmp_path / ".noetl" / "results"
    assert (settings.max_attempts, settings.lease_seconds, settings.worker_concurrency) == (3, 30, 8)
    assert settings.http_enable_http2 is True and settings.enable_sql_api is False
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.results_s3_prefix == "noetl/results"
    assert settings.sandbox_roots == ()


def test_a_variable_set_after_import_is_read_at_the_next_use(monkeypatch, tmp_path):
    monkeypatch.setenv("NOETL_WORKER_CONCURRENCY", "3")
    assert load_settings().worker_concurrency == 3

    monkeypatch.setenv("NOETL_WORKER_CONCURRENCY", "5")
    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("NOETL_SANDBOX_ROOT", f"{tmp_path}/a:{tmp_path}/b")
    monkeypatch.setenv("NOETL_HTTP_ENABLE_HTTP2", "off")

    settings = load_settings()
    assert settings.worker_concurrency == 5
    assert settings.home == tmp_path / "h"
    assert settings.sandbox_roots == (tmp_path / "a", tmp_path / "b")
    assert settings.http_enable_http2 is False


def test_an_empty_value_means_unset(monkeypatch):
    monkeypatch.setenv("NOETL_MAX_ATTEMPTS", "")
    monkeypatch.setenv("NOETL_DATABASE_URL", "")

    assert load_settings().max_attempts == 3
    assert load_settings().database_url is None


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("NOETL_MAX_ATTEMPTS", "three", "NOETL_MAX_ATTEMPTS must be an integer, got 'three'"),
    ("NOETL_ENABLE_SQL_API", "maybe", "NOETL_ENABLE_SQL_API must be a boolean (true/false, 1/0, yes/no, on/off), "
                                      "got 'maybe'"),
])
def test_a_bad_value_is_one_input_error_naming_the_variable(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)

    with pytest.raises(InputError) as raised:
        load_settings()

    assert str(raised.value) == expected


def test_secrets_are_not_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("NOETL_API_TOKEN", "tok-very-secret")
    monkeypatch.setenv("NOETL_DATABASE_URL", "postgresql://u:pw-very-secret@h/db")

    shown = repr(load_settings())

    assert "tok-very-secret" not in shown and "pw-very-secret" not in shown


def test_the_cli_reports_a_bad_value_in_one_line_with_exit_code_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NOETL_HOME": str(tmp_path / "home"),
           "NOETL_LEASE_SECONDS": "30s"}
    playbook = tmp_path / "p.yaml"
    playbook.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: p}\n"
                        "workflow:\n  - step: start\n    tool: {kind: noop}\n")

    proc = subprocess.run([sys.executable, "-m", "noetl.cli.main", "run", str(playbook)], env=env,
                          capture_output=True, text=True, timeout=60)

    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: NOETL_LEASE_SECONDS must be an integer, got '30s'"


def test_the_settings_page_lists_every_variable_as_the_code_defines_it():
    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")

    assert page == render(), "regenerate: python -m noetl.settings_doc > docs/settings.md"
    for setting in fields(Settings):
        assert f"| `{variable_name(setting.name)}` |" in page
        assert str(setting.type) in READERS, f"{setting.name}: no reader for {setting.type}"
