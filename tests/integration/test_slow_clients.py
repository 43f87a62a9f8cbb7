"""Slow clients on `noetl server start`: a client that sends its headers a line at a time
(slowloris) or stalls in its body loses its connection after NOETL_REQUEST_TIMEOUT_SECONDS, while
other clients and a request that takes longer than that to answer are served."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_distributed_cluster import Cluster, create_database

DEADLINE = 30.0  # polls give up here; the server's own limit in this test is 1 s


@pytest.fixture
def server(pg_cluster: dict[str, Any], tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(create_database(pg_cluster), tmp_path / "deployment",
                      env={"NOETL_REQUEST_TIMEOUT_SECONDS": "1", "NOETL_ENABLE_SQL_API": "true"})
    try:
        cluster.start_server()
        yield cluster
    finally:
        cluster.close()


def _connect(cluster: Cluster) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", cluster.port), timeout=DEADLINE)
    conn.settimeout(0.2)
    return conn


def _closed_by_server(conn: socket.socket, trickle: bytes = b"") -> bytes:
    """Send ``trickle`` every 0.2 s until the server closes the connection; what it answered."""
    answer, give_up = b"", time.monotonic() + DEADLINE
    while time.monotonic() < give_up:
        try:
            if trickle:
                conn.sendall(trickle)
            data = conn.recv(4096)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return answer
        if not data:
            return answer
        answer += data
    raise AssertionError(f"the server kept a slow client's connection for {DEADLINE:g} s")


def test_slow_headers_and_a_stalled_body_lose_their_connection(server: Cluster) -> None:
    with _connect(server) as slow_head, _connect(server) as stalled_body:
        slow_head.sendall(b"GET /health HTTP/1.1\r\nHost: noetl\r\n")
        stalled_body.sendall(b"POST /api/catalog/register HTTP/1.1\r\nHost: noetl\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        # Others are served meanwhile, a request that runs longer than the limit included.
        slow_query = server.client.post("/api/postgres/execute", json={"query": "SELECT 1 AS one FROM pg_sleep(1.5)"})
        assert slow_query.status_code == 200 and slow_query.json()["rows"] == [[1]], slow_query.text
        assert server.client.get("/health").status_code == 200
        assert _closed_by_server(slow_head, trickle=b"X-Slow: 1\r\n") == b""
        answer = _closed_by_server(stalled_body)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"request body not received: nothing came for 1 s (NOETL_REQUEST_TIMEOUT_SECONDS)" in answer
    keep_alive = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
    try:  # carries request after request, each begun within the limit
        sockets = []
        for _ in range(2):
            keep_alive.request("GET", "/health")
            assert keep_alive.getresponse().read().startswith(b'{"status":"ok"')
            sockets.append(keep_alive.sock)
            time.sleep(0.5)
        assert sockets[0] is sockets[1] is not None
    finally:
        keep_alive.close()
