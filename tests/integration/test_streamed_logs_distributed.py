"""Logs streamed while a step runs, on the distributed runtime: a worker on PostgreSQL and a worker
that reports through the server's API; seen with `noetl --server-url ... logs` and
`GET /api/executions/{id}/logs` before the step ends. A failed step's error names the playbook line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.waiting import until
from test_distributed_cluster import clusters

FIXTURES = Path(__file__).parent.parent / "fixtures" / "playbooks"
TOKEN = "tok-streamed-4f1c9a"  # a secret value: never stored, in a log line either


@pytest.fixture(scope="module", params=["database", "remote"])
def cluster(request: pytest.FixtureRequest, pg_cluster: dict[str, Any],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One deployment per kind of worker for the module: each test registers its own playbook and
    looks only at its own executions."""
    for make in clusters(pg_cluster, tmp_path_factory.mktemp("streamed-logs")):
        deployment = make(env={"NOETL_SECRET_STREAM_TOKEN": TOKEN})
        deployment.start_server()
        if request.param == "database":
            deployment.start_worker("w1")
        else:
            deployment.start_remote_worker("r1")
        yield deployment


def _api_lines(cluster: Any, execution_id: str) -> list[tuple[str, str, str]]:
    response = cluster.client.get(f"/api/executions/{execution_id}/logs")
    assert response.status_code == 200, response.text
    assert TOKEN not in response.text
    return [(row["step"], row["stream"], row["line"]) for row in response.json()]


@pytest.mark.slow
def test_lines_are_seen_while_the_step_runs_and_once_after(cluster: Any, tmp_path: Path) -> None:
    cluster.register((FIXTURES / "streamed_logs.yaml").read_text())
    release = tmp_path / "release"
    execution_id = cluster.execute("demo/streamed_logs", {"release": str(release)})
    try:
        # The step prints its three lines at once, but they are stored in batches: wait for the last.
        seen = until("the first lines in noetl logs", lambda: (lambda r: r if "start: warned" in r.stdout else None)(
            cluster.cli("logs", execution_id)))
        assert cluster.status(execution_id)["status"] == "running"  # the step waits for the release file
        assert [line.split(" ", 2)[2] for line in seen.stdout.splitlines()] == [
            "start: tick 1", "start: token ***", "start: warned"]
        assert _api_lines(cluster, execution_id) == [
            ("start", "stdout", "tick 1"), ("start", "stdout", "token ***"), ("start", "stderr", "warned")]
        env = {**os.environ, "NOETL_HOME": str(cluster.home)}
        follower = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "--server-url", cluster.url, "logs",
                                     execution_id, "--follow", "--json"], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
    finally:
        release.touch()
    assert cluster.wait(execution_id)["status"] == "completed"
    followed, errors = follower.communicate(timeout=90)
    assert follower.returncode == 0, errors
    expected = [("start", "stdout", "tick 1"), ("start", "stdout", "token ***"), ("start", "stderr", "warned"),
                ("start", "stdout", "tick 2"), ("shell", "stdout", "from-shell"), ("shell", "stderr", "shell-error")]
    assert [(r["step"], r["stream"], r["line"]) for r in map(json.loads, followed.splitlines())] == expected
    assert _api_lines(cluster, execution_id) == expected  # once each, though the events keep their copy
    events = cluster.client.get(f"/api/executions/{execution_id}/events").text
    assert TOKEN not in events


@pytest.mark.slow
def test_a_failed_python_step_names_the_playbook_line_in_status(cluster: Any) -> None:
    cluster.register((FIXTURES / "fail_at_line.yaml").read_text())
    execution_id = cluster.execute("demo/fail_at_line")
    doc = cluster.wait(execution_id)
    assert doc["steps"]["start"]["error"]["playbook_line"] == 12
    status = cluster.cli("status", execution_id)
    assert "    at demo/fail_at_line:12: step 'start' (python) failed: ValueError: total is 3" in status.stdout
    watched = cluster.cli("status", execution_id, "--watch")
    assert watched.returncode == 1 and "at demo/fail_at_line:12" in watched.stderr
    waited = cluster.cli("exec", "catalog://demo/fail_at_line", "-r", "distributed", "--wait")
    assert waited.returncode == 1 and "at demo/fail_at_line:12" in waited.stderr



INPUT_FAILS = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: input_fails, path: demo/input_fails}
workload:
  items: [1, 2]
workflow:
  - step: start
    input:
      x: "{{ workload.items + 'a' }}"
    tool: {kind: python, code: "result = x"}
"""
TOOL_FIELD_FAILS = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: tool_field_fails, path: demo/tool_field_fails}
workflow:
  - step: start
    loop: {in: [1, 2], iterator: it}
    tool:
      kind: http
      url: "{{ it / 0 }}"
"""


@pytest.mark.slow
@pytest.mark.parametrize(("playbook", "line", "message"), [
    (INPUT_FAILS, 9, "step 'start' input.x: TypeError"),  # rendered by the server's engine
    (TOOL_FIELD_FAILS, 9, "step 'start': 2 of 2 iterations failed: step 'start' url: ZeroDivisionError"),  # a worker
])
def test_a_failed_template_names_the_playbook_line_in_status(cluster: Any, playbook: str, line: int,
                                                             message: str) -> None:
    cluster.register(playbook)
    path = playbook.split("path: ", 1)[1].split("}", 1)[0]
    execution_id = cluster.execute(path)
    assert cluster.wait(execution_id)["steps"]["start"]["error"]["playbook_line"] == line
    status = cluster.cli("status", execution_id)
    assert f"    at {path}:{line}: {message}" in status.stdout, status.stdout
