"""Workers without database credentials: `noetl worker start --server-url URL [--token T]`.

They lease, heartbeat and report through the server's API. The same guarantees as database
workers are checked on a real deployment: every conformance case gives the same outcome, a worker
killed mid-step has its command re-run by another (the server's reaper), and a child playbook call
is not repeated when its command is.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_distributed_conformance as conformance
from support.waiting import STARTUP_SECONDS, until
from test_distributed_cluster import Cluster, create_database

TOKEN = "remote-worker-token"


@pytest.fixture(scope="module")
def remote(pg_cluster: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    deployment = Cluster(create_database(pg_cluster), tmp_path_factory.mktemp("remote"),
                         env={"NOETL_API_TOKEN": TOKEN})
    try:
        deployment.start_server()
        deployment.start_remote_worker("r1", concurrency=4)
        deployment.start_remote_worker("r2", concurrency=4)
        yield deployment
    finally:
        deployment.close()


@pytest.mark.parametrize("case", conformance.CASES)
def test_conformance_case_on_workers_without_database_credentials(case: str, remote: Cluster) -> None:
    conformance.test_conformance_case_on_the_distributed_runtime(case, remote)


def _worker_names(remote: Cluster, execution_id: str) -> set[str]:
    events = remote.client.get(f"/api/executions/{execution_id}/events").json()
    return {e["meta"].get("worker") for e in events if e["event_type"] in ("call.done", "call.error")}


CHAIN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: remote_chain, path: tests/remote_chain}
workload: {items: [1, 2, 3, 4, 5, 6]}
workflow:
  - step: start
    loop: {in: "{{ workload.items }}", iterator: n, spec: {mode: parallel, max_in_flight: 6}}
    tool: {kind: python, input: {n: "{{ iter.n }}"}, code: "result = n * 10"}
    next: {arcs: [{step: child, when: "{{ event.name == 'loop.done' }}"}]}
  - step: child
    tool: {kind: playbook, path: tests/remote_child, input: {values: "{{ start.results }}"}}
    next: [{step: end}]
  - step: end
    tool: {kind: python, input: {total: "{{ child.total }}"}, code: "result = {'total': total}"}
"""

CHILD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: remote_child, path: tests/remote_child}
workload: {values: []}
workflow:
  - step: start
    tool: {kind: python, input: {values: "{{ workload.values }}"}, code: "result = {'total': sum(values)}"}
"""


def test_loops_and_child_playbooks_run_on_remote_workers(remote: Cluster) -> None:
    remote.register(CHILD)
    remote.register(CHAIN)
    doc = remote.wait(remote.execute("tests/remote_chain"))
    assert doc["status"] == "completed", doc
    assert doc["result"] == {"total": 210}
    children = remote.client.get("/api/executions", params={"parent_execution_id": doc["execution_id"]}).json()
    assert len(children) == 1 and children[0]["status"] == "completed"
    assert _worker_names(remote, doc["execution_id"]) <= {"r1", "r2"}


def test_a_loop_aggregate_by_reference_is_read_through_the_server(remote: Cluster) -> None:
    results = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks" / "results"
    entry = remote.register((results / "loop_aggregate_failures.yaml").read_text())
    doc = remote.wait(remote.execute(entry["path"]), timeout=120)
    assert doc["status"] == "completed", doc
    assert doc["result"] == {"n": 60, "errors": 3, "seventh": "ValueError: item 7 is bad", "failed": 3,
                             "ok": [0, 1, 2]}
    assert doc["steps"]["start"]["result"]["results"]["_ref"]["count"] == 60
    assert _worker_names(remote, doc["execution_id"]) <= {"r1", "r2"}


def test_big_results_of_remote_workers_are_stored_by_reference_through_the_server(remote: Cluster) -> None:
    results = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks" / "results"
    entry = remote.register((results / "big_results.yaml").read_text())
    doc = remote.wait(remote.execute(entry["path"]), timeout=120)
    assert doc["status"] == "completed", doc
    execution_id = doc["execution_id"]
    start = doc["steps"]["start"]["result"]
    assert start["_ref"]["uri"].startswith("noetl://result/") and (start["count"], start["status"]) == (5000, "ok")
    assert doc["result"] == {"picks": [1, 2400, 0, 5000], "ref": start["_ref"]["uri"]}
    assert _worker_names(remote, execution_id) <= {"r1", "r2"}
    # The reports carried references: the event log stays small, the data is in the result table.
    (biggest,) = remote.sql("SELECT max(octet_length(result::text)) FROM noetl.event WHERE execution_id = %s",
                            int(execution_id))
    assert biggest[0] < 8 * 1024
    (stored,) = remote.sql("SELECT count(*), min(step) FROM noetl.result WHERE execution_id = %s", execution_id)
    assert stored == (4, "loop")
    whole = remote.client.get(f"/api/executions/{execution_id}/results/start")
    assert whole.status_code == 200 and whole.json()["data"]["rows"][4999]["i"] == 4999


def test_the_result_upload_route_checks_what_it_stores(remote: Cluster) -> None:
    execution_id = remote.execute(remote.register(SLOW)["path"])
    data = b'{"rows": [1, 2, 3]}'
    digest = hashlib.sha256(data).hexdigest()

    def upload(body: bytes = data, **params: Any) -> httpx.Response:
        query = {"execution_id": execution_id, "command_id": f"{execution_id}/start/1", "sha256": digest, **params}
        return remote.client.post("/api/workers/results", params=query, content=body,
                                  headers={"Content-Type": "application/json"})

    stored = upload()
    assert stored.status_code == 200, stored.text
    ref = stored.json()["_ref"]
    assert ref["uri"].startswith("noetl://result/") and ref["size"] == len(data) and ref["sha256"] == digest
    assert remote.client.get("/api/results", params={"uri": ref["uri"]}).json() == {"rows": [1, 2, 3]}
    assert upload(b'{"rows": [1, 2]}').status_code == 400  # not what the sha256 says
    assert upload(command_id="1/start/1").status_code == 400  # a command of another execution
    assert upload(execution_id="1", command_id="1/start/1").status_code == 404
    assert upload(body=b"x" * (11 * 1024 * 1024)).status_code == 413  # NOETL_MAX_BODY_BYTES (10 MB)
    anonymous = httpx.post(f"{remote.url}/api/workers/results", params={"execution_id": execution_id,
                           "command_id": f"{execution_id}/start/1", "sha256": digest}, content=data)
    assert anonymous.status_code == 401
    remote.wait(execution_id, timeout=60)


SLOW = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: remote_slow, path: tests/remote_slow}
workflow:
  - step: start
    tool: {kind: python, code: "import time\\ntime.sleep(3)\\nresult = 'slept'"}
"""


ONCE_SLOW = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: remote_once_slow, path: tests/remote_once_slow}
workload: {marker: ""}
workflow:
  - step: start
    tool:
      kind: python
      input: {marker: "{{ workload.marker }}"}
      code: |
        import os, time
        first = not os.path.exists(marker)
        with open(marker, "a") as runs:
            runs.write("run\\n")
        if first:
            time.sleep(60)  # the worker running it is killed meanwhile
        result = 'slept'
"""


def test_a_killed_remote_worker_has_its_command_run_again(pg_cluster: dict[str, Any], tmp_path: Path) -> None:
    # 3 s leases, renewed every second through the server: the rescuer's own lease must not lapse
    # while a loaded machine stalls its heartbeat (the step would run a third time).
    deployment = Cluster(create_database(pg_cluster), tmp_path, lease_seconds=3)
    try:
        deployment.start_server()
        deployment.register(ONCE_SLOW)
        deployment.start_remote_worker("doomed", concurrency=1, lease_seconds=3)
        marker = tmp_path / "runs.txt"
        execution_id = deployment.execute("tests/remote_once_slow", {"marker": str(marker)})
        until("the step's code to run on the doomed worker", marker.exists, seconds=STARTUP_SECONDS)
        assert deployment.sql("SELECT 1 FROM noetl.command WHERE lease_owner = 'doomed' AND status = 'leased'")
        deployment.stop_worker("doomed", signal.SIGKILL)
        deployment.start_remote_worker("rescuer", concurrency=1, lease_seconds=3)
        doc = deployment.wait(execution_id, timeout=60)
        assert doc["status"] == "completed" and doc["result"] == "slept"
        reports = [e for e in deployment.client.get(f"/api/executions/{execution_id}/events").json()
                   if e["event_type"] == "call.done"]
        assert [(e["meta"]["worker"], e["meta"]["attempt"]) for e in reports] == [("rescuer", 2)]
        assert marker.read_text() == "run\nrun\n"  # the killed run and the rescuer's
    finally:
        deployment.close()


def test_a_remote_worker_with_a_wrong_token_stops_with_one_line(remote: Cluster) -> None:
    right = remote.env["NOETL_API_TOKEN"]
    remote.env["NOETL_API_TOKEN"] = "wrong-token"
    try:
        remote.start_remote_worker("intruder", concurrency=1)
    finally:
        remote.env["NOETL_API_TOKEN"] = right  # the module's other workers and calls keep the right one
    assert remote.workers["intruder"].wait(timeout=60) == 2
    lines = [line for line in remote.log("intruder").splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "refused this worker's token (401)" in lines[0], remote.log("intruder")
    assert "wrong-token" not in remote.log("intruder")
    del remote.workers["intruder"]


SEED_WORKER = """
import asyncio
from noetl.worker.executor_v2 import WorkerExecutorV2, QueuePollerV2

async def main():
    worker_id = "worker-001"
    server_url = "{url}"

    # Create executor
    executor = WorkerExecutorV2(
        worker_id=worker_id,
        server_url=server_url
    )

    # Create poller
    poller = QueuePollerV2(
        worker_id=worker_id,
        server_url=server_url,
        executor=executor,
        poll_interval=1.0
    )

    # Start polling
    await poller.start()

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_integration_guides_worker_code_runs_as_written(pg_cluster: dict[str, Any], tmp_path: Path) -> None:
    import subprocess
    import sys

    deployment = Cluster(create_database(pg_cluster), tmp_path, env={"NOETL_API_TOKEN": TOKEN})
    try:
        deployment.start_server()
        deployment.register(SLOW.replace("time.sleep(3)", "time.sleep(0)"))
        script = tmp_path / "worker_v2.py"
        script.write_text(SEED_WORKER.replace("{url}", deployment.url))
        env = {k: v for k, v in deployment.env.items() if k not in ("NOETL_DATABASE_URL", "NOETL_SECRET_KEY")}
        deployment.workers["seed"] = subprocess.Popen([sys.executable, str(script)], env=env,
                                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        doc = deployment.wait(deployment.execute("tests/remote_slow"), timeout=60)
        assert doc["status"] == "completed" and doc["result"] == "slept"
        assert _worker_names(deployment, doc["execution_id"]) == {"worker-001"}
        assert deployment.stop_worker("seed") == 0  # SIGTERM: a clean stop
    finally:
        deployment.close()
