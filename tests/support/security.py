"""Checks shared by the local and distributed security tests: what user code may see and store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "security"
SAFE = {"PATH", "HOME", "LANG", "TZ"}
SHELL_ADDS = {"PWD", "SHLVL", "_", "OLDPWD"}


def env_names(env_output: str) -> set[str]:
    return {line.split("=", 1)[0] for line in env_output.splitlines() if "=" in line}


def assert_tools_saw_only_what_the_playbook_passed(doc: dict[str, Any]) -> None:
    """The status document of a run of ``tool_environment.yaml``."""
    assert doc["status"] == "completed", doc.get("error")
    steps = doc["steps"]
    assert env_names(steps["start"]["result"]["stdout"]) - SHELL_ADDS <= SAFE | {"PASSED"}
    assert "PASSED=from-the-playbook" in steps["start"]["result"]["stdout"]
    thread = steps["python_thread"]["result"]
    assert set(thread["environ"]) <= SAFE | {"PASSED"} and thread["environ"]["PASSED"] == "from-the-playbook"
    assert thread["getenv"] is None
    process = steps["python_process"]["result"]
    assert set(process["environ"]) <= SAFE
    assert env_names(process["child"]) - SHELL_ADDS <= SAFE


def assert_nothing_contains(secrets: list[str], *documents: Any) -> None:
    for document in documents:
        text = document if isinstance(document, str) else json.dumps(document)
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked"
