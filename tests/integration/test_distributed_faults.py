"""Faults injected into a running deployment: each execution still ends correctly, nothing is lost,
and nothing runs twice except an at-least-once re-run of the interrupted step (checked from the
event log)."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.pgcluster import _run, _server_account, postgres_cluster
from test_distributed_cluster import Cluster, clusters, create_database


@pytest.fixture
def cluster_factory(pg_cluster: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    yield from clusters(pg_cluster, tmp_path)


SLOW_STEP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow, path: tests/slow}
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
            time.sleep(60)  # the worker running it is killed meanwhile; the rescuer's run ends at once
        result = {'slept': True}
    next: [{step: end}]
  - step: end
    tool: {kind: noop}
"""

LOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: loop, path: tests/loop}
workload: {n: 200, pause: 0.02}
workflow:
  - step: start
    loop: {in: "{{ range(workload.n) | list }}", iterator: i, spec: {mode: parallel, max_in_flight: 16}}
    tool:
      kind: python
      input: {i: "{{ iter.i }}", pause: "{{ workload.pause }}"}
      code: "import time; time.sleep(pause); result = i * 2"
    next: [{step: end}]
  - step: end
    tool: {kind: noop}
"""


def call_reports(cluster: Cluster, execution_id: str, step: str) -> Counter[Any]:
    """How many call.done reports each loop index (or the single call, as None) has in the log."""
    rows = cluster.sql("SELECT meta->>'loop_index' FROM noetl.event WHERE execution_id = %s "
                       "AND node_name = %s AND event_type = 'call.done'", int(execution_id), step)
    return Counter(None if row[0] is None else int(row[0]) for row in rows)


def wait_for(condition: Any, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def leased_by(cluster: Cluster, worker: str) -> int:
    return int(cluster.sql("SELECT count(*) FROM noetl.command WHERE status = 'leased' AND lease_owner = %s",
                           worker)[0][0])


@pytest.mark.slow
def test_kill_9_of_a_worker_in_the_middle_of_a_step(cluster_factory: Any, tmp_path: Path) -> None:
    # A 3 s lease, renewed every second. A loaded machine can hold a worker's heartbeat up for most of a
    # second; a 1 s lease then lapses under a live worker, and the step runs once more than this test means.
    cluster = cluster_factory(lease_seconds=3)
    cluster.start_server()
    cluster.register(SLOW_STEP)
    cluster.start_worker("doomed")
    marker = tmp_path / "runs.txt"
    execution_id = cluster.execute("tests/slow", {"marker": str(marker)})
    wait_for(marker.exists, what="the step to start")  # its code runs, and waits to be killed
    assert leased_by(cluster, "doomed") == 1
    cluster.stop_worker("doomed", signal.SIGKILL)
    cluster.start_worker("rescuer")
    doc = cluster.wait(execution_id, timeout=60)
    assert doc["status"] == "completed", doc
    assert call_reports(cluster, execution_id, "start") == {None: 1}
    attempt, worker = cluster.sql("SELECT meta->>'attempt', meta->>'worker' FROM noetl.event WHERE execution_id = %s"
                                  " AND event_type = 'call.done' AND node_name = 'start'", int(execution_id))[0]
    assert (attempt, worker) == ("2", "rescuer")
    assert marker.read_text() == "run\nrun\n"  # the killed run and the rescuer's
    # The rescuer's step runs reach /metrics at its next flush (every reaper round).
    wait_for(lambda: steps_metric(cluster) == {"completed": 2.0, "failed": 0.0}, timeout=10, what="step metrics")


def steps_metric(cluster: Cluster) -> dict[str, float]:
    text = cluster.client.get("/metrics").text
    return {sample.labels["status"]: sample.value
            for family in text_string_to_metric_families(text) if family.name == "noetl_steps"
            for sample in family.samples if sample.name == "noetl_steps_total"}


@pytest.mark.slow
def test_kill_9_of_a_worker_in_the_middle_of_a_parallel_loop(cluster_factory: Any) -> None:
    cluster = cluster_factory(lease_seconds=3)  # see the test above: 1 s lapses under a live, loaded worker
    cluster.start_server()
    cluster.register(LOOP)
    cluster.start_worker("doomed", concurrency=8)
    cluster.start_worker("survivor", concurrency=8)
    execution_id = cluster.execute("tests/loop")
    wait_for(lambda: sum(call_reports(cluster, execution_id, "start").values()) >= 60, what="60 iterations")
    cluster.stop_worker("doomed", signal.SIGKILL)
    doc = cluster.wait(execution_id, timeout=90)
    assert doc["status"] == "completed", doc
    aggregate = doc["steps"]["start"]["result"]
    assert aggregate["results"] == [i * 2 for i in range(200)]
    assert aggregate["stats"] == {"total": 200, "success": 200, "failed": 0}
    assert call_reports(cluster, execution_id, "start") == dict.fromkeys(range(200), 1)


@pytest.mark.slow
def test_postgresql_restart_while_executions_run(cluster_factory: Any, pg_cluster: dict[str, Any]) -> None:
    cluster = cluster_factory(lease_seconds=5)
    cluster.start_server()
    cluster.register(LOOP)
    cluster.start_worker("w1", concurrency=4)
    cluster.start_worker("w2", concurrency=4)
    ids = [cluster.execute("tests/loop", {"n": 60, "pause": 0.01}) for _ in range(3)]
    wait_for(lambda: sum(call_reports(cluster, ids[0], "start").values()) >= 10, what="progress")
    pg_ctl = f"{pg_cluster['bindir']}/pg_ctl"
    base = pg_cluster["socket_dir"]
    # -l: the restarted server must not inherit (and hold open) this process's output pipe.
    _run([pg_ctl, "-D", f"{base}/data", "-l", f"{base}/server.log", "-m", "fast", "-w", "-t", "60", "restart"],
         _server_account())
    for execution_id in ids:
        doc = cluster.wait(execution_id, timeout=120)
        assert doc["status"] == "completed", doc
        assert doc["steps"]["start"]["result"]["results"] == [i * 2 for i in range(60)]
        reports = call_reports(cluster, execution_id, "start")
        assert set(reports) == set(range(60)) and set(reports.values()) == {1}


@pytest.mark.slow
def test_fifty_concurrent_executions_with_four_workers_run_each_iteration_once(cluster_factory: Any) -> None:
    cluster = cluster_factory()
    cluster.start_server()
    cluster.register(LOOP)
    for n in range(4):
        cluster.start_worker(f"w{n}", concurrency=8)
    ids = [cluster.execute("tests/loop", {"n": 10, "pause": 0}) for _ in range(50)]
    for execution_id in ids:
        doc = cluster.wait(execution_id, timeout=120)
        assert doc["status"] == "completed", doc
        assert doc["steps"]["start"]["result"]["results"] == [i * 2 for i in range(10)]
    rows = cluster.sql("SELECT execution_id, meta->>'loop_index', count(*) FROM noetl.event "
                       "WHERE event_type = 'call.done' AND node_name = 'start' GROUP BY 1, 2")
    assert len(rows) == 500 and {row[2] for row in rows} == {1}
    assert cluster.sql("SELECT count(*) FROM noetl.command WHERE status <> 'done'") == [(0,)]
    workers = cluster.sql("SELECT count(DISTINCT meta->>'worker') FROM noetl.event WHERE event_type = 'call.done'")
    assert workers[0][0] >= 2


@pytest.mark.slow
def test_server_and_worker_stop_promptly_while_postgresql_is_down(tmp_path: Path) -> None:
    # A cluster of its own: this test stops PostgreSQL for good.
    with postgres_cluster() as pg:
        cluster = Cluster(create_database(pg), tmp_path / "c")
        try:
            cluster.start_server()
            cluster.start_worker("w1")
            _run([f"{pg['bindir']}/pg_ctl", "-D", f"{pg['socket_dir']}/data", "-m", "fast", "-w", "stop"],
                 _server_account())
            time.sleep(1)  # the server's and the worker's rounds are now waiting on the pool
            started = time.monotonic()
            assert cluster.server is not None
            cluster.server.send_signal(signal.SIGTERM)
            cluster.workers["w1"].send_signal(signal.SIGTERM)
            cluster.server.wait(timeout=60)
            cluster.workers.pop("w1").wait(timeout=60)
            # Without a bound, each waited out the pool's 10 s connection timeout, twice.
            assert time.monotonic() - started < 8, (cluster.log("server"), cluster.log("w1"))
            cluster.server = None
        finally:
            cluster.close()
