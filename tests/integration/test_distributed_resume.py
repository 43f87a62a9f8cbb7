"""Resume on the distributed runtime: `POST /api/executions/{id}/resume` (and `noetl resume ID` against
a server) continues a failed execution in place on the workers; only the failed loop iterations run
again, and the log still folds to the status document."""

from __future__ import annotations

from pathlib import Path

from test_distributed_cluster import Cluster

from noetl.engine.events import Event
from noetl.engine.status import status_document

FLAKY_LOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: flaky_loop, path: tests/flaky_loop}
workload: {fail: [3, 7, 11]}
workflow:
  - step: start
    loop: {in: "{{ range(20) | list }}", iterator: n, spec: {mode: parallel, max_in_flight: 8}}
    tool:
      kind: python
      input: {n: "{{ iter.n }}", fail: "{{ workload.fail }}", marker: "{{ workload.marker }}"}
      code: |
        import os
        if n in fail and not os.path.exists(marker):
            raise ValueError(f"item {n} not ready")
        result = n * 10
    next: {arcs: [{step: total, when: "{{ event.name == 'loop.done' and result.stats.failed == 0 }}"}]}
  - step: total
    tool: {kind: python, input: {values: "{{ start.results }}"}, code: "result = sum(values)"}
"""


def _iterations_run(cluster: Cluster, execution_id: str) -> list[int]:
    events = cluster.client.get(f"/api/executions/{execution_id}/events").json()
    return sorted(e["meta"]["loop_index"] for e in events
                  if e["event_type"] in ("call.done", "call.error") and e["node_name"] == "start")


def test_resume_reruns_exactly_the_failed_iterations_on_the_workers(two_worker_deployment: Cluster,
                                                                    tmp_path: Path) -> None:
    cluster = two_worker_deployment  # its own playbook and execution on the session's deployment
    marker = tmp_path / "ready"
    cluster.register(FLAKY_LOOP)
    execution_id = cluster.execute("tests/flaky_loop", {"marker": str(marker)})
    failed = cluster.wait(execution_id)
    assert failed["status"] == "failed"
    assert failed["steps"]["start"]["result"]["stats"] == {"total": 20, "success": 17, "failed": 3}
    assert _iterations_run(cluster, execution_id) == list(range(20))

    marker.write_text("ok")
    answer = cluster.client.post(f"/api/executions/{execution_id}/resume")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"execution_id": execution_id, "status": "running", "resumed": True}
    doc = cluster.wait(execution_id)
    assert doc["status"] == "completed", doc
    assert doc["result"] == sum(n * 10 for n in range(20))
    runs = _iterations_run(cluster, execution_id)
    assert sorted(set(runs)) == list(range(20)) and [n for n in set(runs) if runs.count(n) == 2] == [3, 7, 11]

    events = cluster.client.get(f"/api/executions/{execution_id}/events").json()
    assert "execution.resumed" in [e["event_type"] for e in events]
    assert status_document([Event.from_dict(e) for e in events]) == doc

    again = cluster.client.post(f"/api/executions/{execution_id}/resume")
    assert again.status_code == 400 and "completed" in again.json()["error"]
    assert cluster.client.post("/api/executions/123456789/resume").status_code == 404


def test_resume_and_rerun_wait_on_a_server_and_exit_like_run(two_worker_deployment: Cluster, tmp_path: Path) -> None:
    # Locally both always wait; against a server they answered at once with exit 0 whatever the end.
    import json

    cluster = two_worker_deployment
    marker = tmp_path / "ready"
    cluster.register(FLAKY_LOOP)
    execution_id = cluster.execute("tests/flaky_loop", {"marker": str(marker)})
    assert cluster.wait(execution_id)["status"] == "failed"

    still_failing = cluster.cli("resume", execution_id, "--wait")
    assert still_failing.returncode == 1, still_failing.stderr
    assert still_failing.stdout.startswith(f"execution {execution_id}: failed")

    marker.write_text("ok")
    rerun = cluster.cli("rerun", execution_id, "--wait", "--json")
    assert rerun.returncode == 0, rerun.stderr
    doc = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert doc["status"] == "completed" and doc["execution_id"] != execution_id
    assert doc["result"] == sum(n * 10 for n in range(20))
    resumed = cluster.cli("resume", execution_id, "--wait")
    assert resumed.returncode == 0 and resumed.stdout.startswith(f"execution {execution_id}: completed")
