"""`noetl hook ...` as a user runs it over the local store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: deploy, path: ops/deploy}
workflow:
  - step: start
    tool: {kind: noop}
"""


def test_hook_add_list_delete(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "deploy.yaml"
    playbook.write_text(PLAYBOOK)
    assert noetl("catalog", "register", str(playbook)).code == 0
    added = noetl("hook", "add", "github", "--path", "ops/deploy", "--secret", "s3cret-value",
                  "--payload-template", '{"ref": "{{ body.ref }}"}', "--json")
    assert added.code == 0, added.stderr
    assert added.json()["auth"] == "signature" and added.json()["payload_template"] == {"ref": "{{ body.ref }}"}
    assert "s3cret-value" not in added.stdout
    token_added = noetl("hook", "add", "ci", "--path", "ops/deploy", "--token", "tok-value")
    assert token_added.stdout.split() == ["ci", "ops/deploy", "token"]  # its line of `hook list`, not JSON
    assert "tok-value" not in token_added.stdout + token_added.stderr
    listed = noetl("hook", "list", "--json")
    assert [(h["name"], h["auth"]) for h in listed.json()] == [("ci", "token"), ("github", "signature")]
    assert "s3cret-value" not in listed.stdout and "tok-value" not in listed.stdout
    assert "github" in noetl("hook", "list").stdout

    assert noetl("hook", "delete", "ci", "--json").json() == {"name": "ci", "deleted": True}
    assert [h["name"] for h in noetl("hook", "list", "--json").json()] == ["github"]
    assert noetl("hook", "delete", "github").stdout.strip() == "deleted hook github"


def test_bad_hooks_are_one_line_errors_and_store_nothing(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "deploy.yaml"
    playbook.write_text(PLAYBOOK)
    assert noetl("catalog", "register", str(playbook)).code == 0
    cases = [
        (("hook", "add", "h", "--path", "ops/deploy"), "secret/token"),
        (("hook", "add", "h", "--path", "ops/deploy", "--secret", "a", "--token", "b"), "secret/token"),
        (("hook", "add", "h", "--path", "no/such", "--token", "t"), "--path"),
        (("hook", "add", "h", "--path", "ops/deploy", "--token", "t", "--payload-template", "{nope"),
         "--payload-template"),
        (("hook", "delete", "nope"), "nope"),
    ]
    for args, named in cases:
        result = noetl(*args)
        assert result.code == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert noetl("hook", "list", "--json").json() == []


def test_a_hooks_signing_secret_is_stored_encrypted(noetl: Any, noetl_home: Path, tmp_path: Path) -> None:
    playbook = tmp_path / "deploy.yaml"
    playbook.write_text(PLAYBOOK)
    assert noetl("catalog", "register", str(playbook)).code == 0
    assert noetl("hook", "add", "github", "--path", "ops/deploy", "--secret", "s3cret-value").code == 0
    [row] = noetl("query", "SELECT secret FROM hook", "--format", "json").json()
    assert row["secret"].startswith("noetl-sealed:") and "s3cret-value" not in row["secret"]
    stored = b"".join(p.read_bytes() for p in noetl_home.glob("noetl.db*"))
    assert b"s3cret-value" not in stored
