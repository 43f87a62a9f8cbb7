"""Soak: loops keep running on server + workers + PostgreSQL while workers are killed with kill -9
at random moments. Every iteration of every execution must be recorded exactly once."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_distributed_cluster import clusters
from test_distributed_faults import call_reports

SOAK_SECONDS = 40  # of chaos; with start-up and the final drain the test takes about a minute
N = 30
EXECUTIONS = 40  # one submitted each second of the chaos
# Seconds between two kills: about as many kills (ten or more) as the 60 s of chaos with one every 2-6 s had.
KILL_EVERY = (1.5, 4.5)

LOOPS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: soak, path: tests/soak}
workload: {n: 30, pause: 0.05}
workflow:
  - step: start
    loop: {in: "{{ range(workload.n) | list }}", iterator: i, spec: {mode: parallel, max_in_flight: 6}}
    tool:
      kind: python
      input: {i: "{{ iter.i }}", pause: "{{ workload.pause }}"}
      code: "import time; time.sleep(pause); result = i * 3"
    next: [{step: serial}]
  - step: serial
    loop: {in: "{{ range(5) | list }}", iterator: j}
    tool: {kind: python, input: {j: "{{ iter.j }}"}, code: "result = j + 100"}
    next: [{step: end}]
  - step: end
    tool: {kind: noop}
"""


@pytest.fixture
def cluster_factory(pg_cluster: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    yield from clusters(pg_cluster, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(420)  # a minute on an idle machine; a loaded CI runner needs the margin
def test_random_kill_9_of_workers_loses_and_doubles_no_iteration(cluster_factory: Any) -> None:
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    # A 3 s lease (renewed every second) still rescues a killed worker's iterations within seconds. A
    # 1 s lease lapses whenever a loaded machine holds a live worker's heartbeat up for 0.7 s, and an
    # iteration that lapses three times fails although no worker running it died.
    cluster = cluster_factory(lease_seconds=3)
    cluster.start_server()
    cluster.register(LOOPS)
    generation = 0
    for _ in range(3):
        generation += 1
        cluster.start_worker(f"w{generation}", concurrency=4)
    ids: list[str] = []
    kills = 0
    chaos_ends = time.monotonic() + SOAK_SECONDS
    next_kill = time.monotonic() + chance.uniform(*KILL_EVERY)
    while time.monotonic() < chaos_ends:
        if len(ids) < EXECUTIONS:
            ids.append(cluster.execute("tests/soak", {"n": N}))
        if time.monotonic() >= next_kill:
            victim = chance.choice(sorted(cluster.workers))
            cluster.stop_worker(victim, signal.SIGKILL)
            kills += 1
            generation += 1
            cluster.start_worker(f"w{generation}", concurrency=4)
            next_kill = time.monotonic() + chance.uniform(*KILL_EVERY)
        time.sleep(1)
    assert kills >= 5, f"seed {seed}: only {kills} kills"
    for execution_id in ids:
        doc = cluster.wait(execution_id, timeout=120)
        assert doc["status"] == "completed", f"seed {seed}: {doc['error']}"
        assert doc["steps"]["start"]["result"]["results"] == [i * 3 for i in range(N)], f"seed {seed}"
        assert doc["steps"]["serial"]["result"]["results"] == [j + 100 for j in range(5)], f"seed {seed}"
        assert call_reports(cluster, execution_id, "start") == dict.fromkeys(range(N), 1), f"seed {seed}"
        assert call_reports(cluster, execution_id, "serial") == dict.fromkeys(range(5), 1), f"seed {seed}"
