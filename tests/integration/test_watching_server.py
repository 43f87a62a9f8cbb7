"""The CLI's watching commands against a deployment (`noetl server start` + a worker on PostgreSQL):
`exec -r distributed --wait`, `executions`, `logs` and `GET /api/executions/{id}/logs`."""

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


WAITING = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: waits, path: tests/waits}
workload: {marker: MARKER}
workflow:
  - step: start
    tool:
      kind: python
      input: {marker: "{{ workload.marker }}"}
      code: |
        import os, time
        print("waiting")
        while not os.path.exists(marker):
            time.sleep(0.05)
        result = {"waited": True}
"""


@pytest.mark.slow
def test_watchers_wait_out_a_server_restart(cluster: Any, tmp_path: Path) -> None:
    marker = tmp_path / "go"
    cluster.register(WAITING.replace("MARKER", str(marker)))
    execution_id = cluster.execute("tests/waits")
    env = {**os.environ, "NOETL_HOME": str(cluster.home)}
    watchers, outputs = [], []
    for name, args in (("status", ("status", execution_id, "--watch")), ("logs", ("logs", execution_id, "--follow"))):
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            watchers.append(subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "--server-url", cluster.url,
                                              *args], stdout=stdout, stderr=stderr, env=env))
        outputs.append((out, err))
    (status_out, status_err), (logs_out, logs_err) = outputs
    # Both follow the running execution (an unknown id or a server away at the start is an error at once).
    until("both watchers to follow the execution",
          lambda: "started (tests/waits)" in status_err.read_text() and "waiting" in logs_out.read_text())
    cluster.stop_server()
    cluster.start_server()  # the same port: what a restart or a rolling upgrade looks like to a client
    marker.touch()
    for watcher in watchers:
        watcher.wait(timeout=90)
    assert watchers[0].returncode == 0, status_err.read_text()
    assert "reconnected to the NoETL server" in status_err.read_text()
    assert f"execution {execution_id} completed" in status_err.read_text()
    assert f"execution {execution_id} (tests/waits): completed" in status_out.read_text()
    assert watchers[1].returncode == 0, logs_err.read_text()
    assert "reconnected to the NoETL server" in logs_err.read_text()
    assert logs_out.read_text().rstrip().endswith("start: waiting")


@pytest.mark.slow
def test_backfill_against_a_server_prints_the_rows_as_locally(cluster: Any) -> None:
    cluster.register(LOOP)
    assert cluster.cli("schedule", "add", "demo/console_loop", "--cron", "0 * * * *", "--name", "h").returncode == 0
    window = ("--from", "2026-03-30T00:00:00Z", "--to", "2026-03-30T01:00:00Z")
    table = cluster.cli("schedule", "backfill", "h", *window)
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert [(row[0], row[2]) for row in rows] == [("2026-03-30T00:00:00+00:00", "started"),
                                                  ("2026-03-30T01:00:00+00:00", "started")]
    again = cluster.cli("schedule", "backfill", "h", *window, "--json")
    assert [row["status"] for row in json.loads(again.stdout)] == ["claimed-before", "claimed-before"]
