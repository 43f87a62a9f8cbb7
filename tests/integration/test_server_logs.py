"""Logs of a deployment: JSON lines with the execution, step and command they concern, and an
access log without query strings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.waiting import STARTUP_SECONDS, until
from test_distributed_cluster import HELLO, clusters


@pytest.fixture
def cluster(pg_cluster: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    yield from clusters(pg_cluster, tmp_path)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_json_logs_carry_ids_and_the_access_log_hides_query_strings(cluster: Any) -> None:
    deployment = cluster()
    deployment.server = deployment._spawn("server", "server", "start", "--host", "127.0.0.1", "--port",
                                          str(deployment.port), "--log-format", "json")
    until("the server to answer /health", lambda: _healthy(deployment.url), seconds=STARTUP_SECONDS)
    deployment.workers["w1"] = deployment._spawn("w1", "worker", "start", "--name", "w1", "--poll-interval", "0.2",
                                                 "--log-format", "json", "--log-level", "debug")
    deployment.register(HELLO)
    execution_id = deployment.execute("tests/hello")
    assert deployment.wait(execution_id)["status"] == "completed"
    assert httpx.get(f"{deployment.url}/api/executions/{execution_id}/status?api_key=hunter2").status_code == 200

    server = json_lines(deployment.log("server"))
    access = [line for line in server if line["logger"] == "uvicorn.access"]
    assert any(f"/api/executions/{execution_id}/status" in line["message"] for line in access)
    assert "hunter2" not in deployment.log("server")
    status_line = next(line for line in access if f"{execution_id}/status" in line["message"])
    assert status_line["execution_id"] == execution_id and status_line["level"] == "info"

    worker = [line for line in json_lines(deployment.log("w1")) if line.get("execution_id") == execution_id]
    assert worker and all(line["command_id"].startswith(execution_id) and line["step"] for line in worker)
