"""Fixtures of the console tests: a private store with executions in it, and `noetl ui` over it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.console import console_process

HERE = Path(__file__).parent


def noetl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOETL_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "noetl.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def run_json(home: Path, playbook: str, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(noetl(home, "run", str(HERE / playbook), "--json", *args).stdout)
    return doc


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-home")


@pytest.fixture(scope="module")
def runs(home: Path) -> dict[str, str]:
    """Executions the pages show: a loop with a failed iteration, a hostile name, a completed run."""
    for name in ("loop_failure.yaml", "slow_loop.yaml", "hostile_name.yaml"):
        assert noetl(home, "catalog", "register", str(HERE / name)).returncode == 0
    return {
        "loop": run_json(home, "loop_failure.yaml")["execution_id"],
        "hostile": run_json(home, "hostile_name.yaml")["execution_id"],
        "slow": run_json(home, "slow_loop.yaml", "--set", "rounds=1", "--set", "pause=0")["execution_id"],
    }


@pytest.fixture(scope="module")
def console(home: Path, runs: dict[str, str]) -> Iterator[str]:
    with console_process(home) as url:
        yield url
