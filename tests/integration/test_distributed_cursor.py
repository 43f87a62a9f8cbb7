"""Cursor loops on the distributed runtime: frames claimed and run by several workers, and a frame's
lease kept alive by its heartbeats while it runs longer than the lease."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo
from support.waiting import STARTUP_SECONDS
from test_distributed_cluster import Cluster, clusters

DRAIN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: cursor_drain, path: tests/cursor_drain}
workload: {rows: 2000}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_work
      command: |
        CREATE TABLE jobs (id int PRIMARY KEY, state text NOT NULL DEFAULT 'pending',
                           processed int NOT NULL DEFAULT 0);
        INSERT INTO jobs (id) SELECT g FROM generate_series(1, {{ rows }}) AS g;
    next: [{step: drain}]
  - step: drain
    loop:
      cursor:
        kind: postgres
        auth: pg_work
        claim: |
          UPDATE jobs SET state = 'claimed'
          WHERE id IN (SELECT id FROM jobs WHERE state = 'pending' ORDER BY id
                       LIMIT {{ __frame_max_rows }} FOR UPDATE SKIP LOCKED)
          RETURNING id
      iterator: job
      spec:
        mode: cursor
        max_in_flight: 6
        frame: {max_rows: 40, row_concurrency: 8, process: row}
    tool:
      kind: postgres
      auth: pg_work
      command: "UPDATE jobs SET state = 'done', processed = processed + 1 WHERE id = {{ iter.job.id }}"
    next:
      arcs:
        - step: end
          when: "{{ event.name == 'loop.done' }}"
  - step: end
    tool: {kind: noop}
"""

SLOW_FRAME = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: cursor_slow, path: tests/cursor_slow}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_work
      command: |
        CREATE TABLE slow_jobs (id int PRIMARY KEY, state text NOT NULL DEFAULT 'pending',
                                processed int NOT NULL DEFAULT 0);
        INSERT INTO slow_jobs (id) VALUES (1), (2);
    next: [{step: drain}]
  - step: drain
    loop:
      cursor:
        kind: postgres
        auth: pg_work
        claim: |
          UPDATE slow_jobs SET state = 'claimed'
          WHERE id IN (SELECT id FROM slow_jobs WHERE state = 'pending' ORDER BY id
                       LIMIT {{ __frame_max_rows }} FOR UPDATE SKIP LOCKED)
          RETURNING id
      iterator: job
      spec:
        mode: cursor
        max_in_flight: 1
        frame: {max_rows: 2, row_concurrency: 2, lease_seconds: 1, heartbeat_seconds: 0.2}
    tool:
      - name: wait
        kind: python
        code: "import time; time.sleep(3); result = 'slept'"
      - name: mark
        kind: postgres
        auth: pg_work
        command: "UPDATE slow_jobs SET state = 'done', processed = processed + 1 WHERE id = {{ iter.job.id }}"
"""


@pytest.fixture
def cluster_factory(pg_cluster: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    yield from clusters(pg_cluster, tmp_path)


def register_work_credential(cluster: Cluster) -> None:
    """`pg_work`: the deployment's own database, where the tests keep their work tables."""
    parts = conninfo.conninfo_to_dict(cluster.database_url)
    data = {"host": parts.get("host"), "port": parts.get("port"), "user": parts.get("user"),
            "password": parts.get("password"), "database": parts.get("dbname")}
    response = cluster.client.post("/api/credentials", json={"name": "pg_work", "type": "postgres", "data": data})
    assert response.status_code == 200, response.text


@pytest.mark.slow
@pytest.mark.timeout(300)  # past the drain's own 240 s wait, so that a slow drain fails with its worker logs
def test_three_workers_drain_two_thousand_rows_each_once(cluster_factory: Any) -> None:
    cluster = cluster_factory()
    cluster.start_server()
    register_work_credential(cluster)
    cluster.register(DRAIN)
    cluster.start_worker("w1", concurrency=3)
    cluster.start_worker("w2", concurrency=3)
    cluster.start_remote_worker("r1", concurrency=3)  # a worker that reaches PostgreSQL only through the server
    doc = cluster.wait(cluster.execute("tests/cursor_drain"), timeout=240)
    assert doc["status"] == "completed", doc["error"]
    assert cluster.sql("SELECT count(*), min(processed), max(processed) FROM jobs WHERE state = 'done'") == [
        (2000, 1, 1)]
    aggregate = doc["steps"]["drain"]["result"]
    assert aggregate["stats"] == {"total": 2000, "success": 2000, "failed": 0}
    assert len(aggregate["results"]) == 2000
    execution_id = int(doc["execution_id"])
    assert cluster.sql("SELECT count(*) FROM noetl.event WHERE execution_id = %s AND event_type = 'loop.done'",
                       execution_id) == [(1,)]
    frames = cluster.sql("SELECT meta->>'worker', (result->>'rows')::int FROM noetl.event WHERE execution_id = %s "
                         "AND node_name = 'drain' AND event_type = 'call.done'", execution_id)
    assert sum(rows for _, rows in frames) == 2000
    assert all(rows <= 40 for _, rows in frames)
    assert len({worker for worker, rows in frames if rows}) >= 2  # frames ran on several workers
    assert doc["steps"]["end"]["status"] == "completed"


@pytest.mark.slow
def test_a_frame_longer_than_its_lease_is_kept_alive_by_heartbeats(cluster_factory: Any) -> None:
    cluster = cluster_factory(lease_seconds=3)  # the reaper looks for expired leases every second
    cluster.start_server()
    register_work_credential(cluster)
    cluster.register(SLOW_FRAME)
    cluster.start_worker("w1", concurrency=2)
    cluster.start_worker("w2", concurrency=2)
    execution_id = cluster.execute("tests/cursor_slow")
    seen: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + 60
    # One connection for every look: a new connection (or an API call) per look can take longer than
    # the 0.2 s between heartbeats on a loaded machine, and the frame would be seen too rarely.
    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        while time.monotonic() < deadline and conn.execute(
                "SELECT status FROM noetl.execution WHERE execution_id = %s", (int(execution_id),)).fetchone() == (
                "running",):
            seen += conn.execute(
                "SELECT attempt, extract(epoch FROM lease_expires_at - heartbeat_at), heartbeat_at, command_id "
                "FROM noetl.command "
                "WHERE execution_id = %s AND step = 'drain' AND status = 'leased'", (int(execution_id),)).fetchall()
            time.sleep(0.05)
    doc = cluster.wait(execution_id)
    assert doc["status"] == "completed", doc["error"]
    assert doc["steps"]["drain"]["result"]["stats"] == {"total": 2, "success": 2, "failed": 0}
    # Each row ran once, although the frame ran three times as long as its lease.
    assert cluster.sql("SELECT id, processed FROM slow_jobs ORDER BY id") == [(1, 1), (2, 1)]
    assert seen, "the frame command was never seen leased"
    assert {attempt for attempt, _, _, _ in seen} == {1}
    # Leased as any command (the worker's 3 s) until the frame starts and after it ended (while it is
    # reported); on the frame's own 1 s lease, renewed every 0.2 s, all the while it ran. The frame that
    # finds no more rows is a command of its own, briefly on its 1 s lease too.
    looks: dict[str, list[tuple[float, Any]]] = {}  # per frame command: (lease window, heartbeat_at)
    for _, window, beat, command in seen:
        looks.setdefault(command, []).append((round(float(window), 3), beat))
    windows = {command: [window for window, _ in each] for command, each in looks.items()}
    assert all(set(each) <= {1.0, 3.0} for each in windows.values()), windows
    own_beats = [sorted({beat for window, beat in each if window == 1.0}) for each in looks.values()]
    for each in windows.values():
        if 1.0 in each:
            first, last = each.index(1.0), len(each) - 1 - each[::-1].index(1.0)
            assert set(each[first:last + 1]) == {1.0}, windows
    # The frame with the rows was renewed at least 5 times, over twice its own lease (it runs for 3 s).
    rows_frame = max(own_beats, key=len)
    assert len(rows_frame) >= 5, own_beats
    assert (rows_frame[-1] - rows_frame[0]).total_seconds() >= 2, own_beats


RECLAIM = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: cursor_reclaim_VARIANT, path: tests/cursor_reclaim_VARIANT}
workload: {release: ""}
workflow:
  - step: start
    tool:
      kind: postgres
      auth: pg_work
      command: |
        CREATE TABLE IF NOT EXISTS reclaim_jobs_VARIANT (id int PRIMARY KEY, state text NOT NULL DEFAULT 'pending',
                                                         claimed_at timestamptz, processed int NOT NULL DEFAULT 0);
        TRUNCATE reclaim_jobs_VARIANT;
        INSERT INTO reclaim_jobs_VARIANT (id) VALUES (1), (2), (3), (4);
    next: [{step: drain}]
  - step: drain
    loop:
      cursor:
        kind: postgres
        auth: pg_work
        claim: |
          UPDATE reclaim_jobs_VARIANT SET state = 'claimed', claimed_at = clock_timestamp()
          WHERE id IN (SELECT id FROM reclaim_jobs_VARIANT
                       WHERE state = 'pending' RECLAIM
                       ORDER BY id LIMIT {{ __frame_max_rows }} FOR UPDATE SKIP LOCKED)
          RETURNING id
      iterator: job
      spec: {mode: cursor, max_in_flight: 1, frame: {max_rows: 2}}
    tool:
      - name: wait
        kind: python
        input: {release: "{{ workload.release }}"}
        code: |
          import os, time
          deadline = time.monotonic() + 60
          while not os.path.exists(release) and time.monotonic() < deadline:
              time.sleep(0.02)
          result = 'released'
      - name: mark
        kind: postgres
        auth: pg_work
        command: "UPDATE reclaim_jobs_VARIANT SET state = 'done', processed = processed + 1 WHERE id = {{ iter.job.id }}"
"""
RECLAIM_CONDITIONS = {
    "stay": "",  # rows claimed by a frame whose worker died stay claimed
    "back": "OR (state = 'claimed' AND claimed_at < clock_timestamp() - interval '1 second')",
}


@pytest.mark.slow
@pytest.mark.timeout(300)  # up to STARTUP_SECONDS for the first frames, then the runs' own 90 s
def test_a_frame_whose_worker_died_is_claimed_again_only_if_the_claim_says_so(cluster_factory: Any,
                                                                              tmp_path: Path) -> None:
    """Two cursor loops on one deployment, one whose claim takes a dead frame's rows back and one whose
    claim leaves them: the worker running both first frames is killed once, in the middle of both."""
    # A 3 s lease: a 1 s one can lapse under the live first worker while a loaded machine holds up its
    # heartbeat, and a frame would then run twice before the kill.
    cluster = cluster_factory(lease_seconds=3)
    cluster.start_server()
    register_work_credential(cluster)
    release = tmp_path / "release"  # the rows' first step waits for it: no row is done before the kill
    ids = {}
    for variant, condition in RECLAIM_CONDITIONS.items():
        cluster.register(RECLAIM.replace("VARIANT", variant).replace("RECLAIM", condition))
    cluster.start_worker("w1", concurrency=4)
    for variant in RECLAIM_CONDITIONS:
        ids[variant] = cluster.execute(f"tests/cursor_reclaim_{variant}", {"release": str(release)})
    deadline = time.monotonic() + STARTUP_SECONDS  # the first worker's start-up is in it
    while cluster.sql("SELECT count(*) FROM noetl.command WHERE step = 'drain' AND status = 'leased'") != [(2,)]:
        assert time.monotonic() < deadline, "the first frames never started"
        time.sleep(0.05)
    # Kill the worker once each first frame has claimed rows 1 and 2 (it then waits on the first).
    for variant in RECLAIM_CONDITIONS:
        while cluster.sql(f"SELECT count(*) FROM reclaim_jobs_{variant} WHERE state = 'claimed'") != [(2,)]:
            assert time.monotonic() < deadline, f"the first frame of {variant} never claimed its rows"
            time.sleep(0.05)
    assert cluster.sql("SELECT count(*) FROM noetl.command WHERE step = 'drain' AND status = 'leased' "
                       "AND lease_owner = 'w1'") == [(2,)]
    cluster.stop_worker("w1", signal.SIGKILL)
    release.touch()
    cluster.start_worker("w2", concurrency=4)
    docs = {variant: cluster.wait(execution_id, timeout=90) for variant, execution_id in ids.items()}
    for variant, doc in docs.items():
        assert doc["status"] == "completed", (variant, doc["error"])
    assert cluster.sql("SELECT id, state, processed FROM reclaim_jobs_back ORDER BY id") == [
        (1, "done", 1), (2, "done", 1), (3, "done", 1), (4, "done", 1)]
    # The new run of the frame claimed again and got rows 3 and 4; 1 and 2 stay claimed.
    assert cluster.sql("SELECT id, state, processed FROM reclaim_jobs_stay ORDER BY id") == [
        (1, "claimed", 0), (2, "claimed", 0), (3, "done", 1), (4, "done", 1)]
    assert docs["stay"]["steps"]["drain"]["result"]["stats"] == {"total": 2, "success": 2, "failed": 0}
