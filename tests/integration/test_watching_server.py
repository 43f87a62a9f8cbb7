"""The CLI's watching commands against a deployment (`noetl server start` + a worker on PostgreSQL):
`exec -r distributed --wait`, `executions`, `logs` and `GET /api/executions/{id}/logs`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_distributed_cluster import clusters

LOOP = (Path(__file__).parent.parent / "console" / "loop_failure.yaml").read_text()


@pytest.fixture
def cluster(pg_cluster: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    for make in clusters(pg_cluster, tmp_path):
        deployment = make()
        deployment.start_server()
        deployment.start_worker("w1")
        yield deployment


@pytest.mark.slow
def test_exec_wait_logs_and_executions_on_a_server(cluster: Any) -> None:
    cluster.register(LOOP)
    failed = cluster.cli("exec", "catalog://demo/console_loop", "-r", "distributed", "--wait", "--json")
    assert failed.returncode == 1, failed.stderr
    doc = json.loads(failed.stdout)
    assert doc["status"] == "failed" and f"execution {doc['execution_id']} started" in failed.stderr
    assert "4/4 (1 failed)" in failed.stderr and "divide[2]: ZeroDivisionError" in failed.stderr
    done = cluster.cli("exec", "catalog://demo/console_loop", "-r", "distributed", "--wait",
                 "--set", "items=[5]")
    assert done.returncode == 0 and ": completed in " in done.stdout

    logs = cluster.cli("logs", doc["execution_id"], "--step", "divide").stdout.splitlines()
    assert [line.split(" ", 2)[2] for line in logs][2] == "divide[2]: dividing by 0"
    for follow in ((), ("--follow",)):
        typo = cluster.cli("logs", doc["execution_id"], "--step", "divid", *follow)
        assert typo.returncode == 2 and typo.stdout == "", typo.stderr
        assert typo.stderr.startswith("error: step 'divid': demo/console_loop has no step of that name"), typo.stderr
    assert cluster.client.get(f"/api/executions/{doc['execution_id']}/logs?step=divid").status_code == 404
    api = cluster.client.get(f"/api/executions/{doc['execution_id']}/logs").json()
    assert [row["line"] for row in api] == ["dividing by 1", "dividing by 2", "dividing by 0", "dividing by 4"]

    listed = json.loads(cluster.cli("executions", "--status", "failed", "--json").stdout)
    assert [row["execution_id"] for row in listed] == [doc["execution_id"]]
    assert len(json.loads(cluster.cli("executions", "--path", "console_loop", "--json").stdout)) == 2
