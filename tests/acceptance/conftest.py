"""Helpers for running the `noetl` command as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "playbooks"
CONFORMANCE = Path(__file__).parent.parent / "conformance"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_noetl(*args: str, home: Path | None = None, stdin: str | None = None, timeout: float = 60,
              env: dict[str, str] | None = None) -> CliResult:
    environ = {**os.environ, **(env or {})}
    if home is not None:
        environ["NOETL_HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-m", "noetl.cli.main", *args], capture_output=True, text=True,
                          input=stdin, timeout=timeout, env=environ)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def noetl_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def noetl(noetl_home: Path):  # type: ignore[no-untyped-def]
    def call(*args: str, **kwargs: Any) -> CliResult:
        return run_noetl(*args, home=noetl_home, **kwargs)

    return call
