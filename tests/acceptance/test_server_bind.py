"""`noetl server start` listens on loopback unless authentication is configured."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_noetl


def test_server_refuses_a_public_address_without_tokens(noetl_home: Path) -> None:
    result = run_noetl("server", "start", "--host", "0.0.0.0", "--port", "1", home=noetl_home,
                       env={"NOETL_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--host 0.0.0.0" in result.stderr and "NOETL_API_TOKEN" in result.stderr


def test_default_host_is_loopback() -> None:
    result = run_noetl("server", "start", "--help")
    assert "127.0.0.1" in result.stdout


def test_a_malformed_token_list_is_one_line_exit_2(noetl_home: Path, tmp_path: Path) -> None:
    result = run_noetl("server", "start", home=noetl_home, env={"NOETL_API_TOKENS": "abc=superuser"})
    assert result.code == 2 and "NOETL_API_TOKENS" in result.stderr and "superuser" in result.stderr
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("- {token: t1, role: read}\n- {token: t2}\n")
    result = run_noetl("server", "start", home=noetl_home, env={"NOETL_API_TOKENS_FILE": str(tokens)})
    assert result.code == 2 and "entry 2" in result.stderr and "Traceback" not in result.stderr
