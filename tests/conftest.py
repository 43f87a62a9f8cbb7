"""Shared test setup: an isolated NOETL_HOME, and the real local services (PostgreSQL, HTTP)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).parent
sys.path.insert(0, str(TESTS_DIR))

from support.fixtures import http_server, pg_cluster, two_worker_deployment  # noqa: E402,F401


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test (and every `noetl` subprocess it starts) uses a private NOETL_HOME."""
    home = tmp_path_factory.mktemp("noetl-home")
    os.environ["NOETL_HOME"] = str(home)
    os.environ.pop("NOETL_SERVER_URL", None)
    os.environ.pop("NOETL_API_TOKEN", None)
