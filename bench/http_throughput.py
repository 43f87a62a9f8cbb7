"""HTTP throughput: a NoETL parallel loop of http calls against a plain httpx script, in one run.

python bench/http_throughput.py [--calls 1000] [--in-flight 50] [--reps 5]

A minimal asyncio HTTP/1.1 keep-alive server runs in a separate process (it answers every GET
with a small JSON body, so it is not the bottleneck). Then, interleaved, ``--reps`` times each:

- NoETL: ``noetl.run`` of a playbook whose one step loops over ``--calls`` elements in parallel
  (``max_in_flight: --in-flight``) with an ``http`` GET per element, on a fresh NOETL_HOME;
- plain: one ``httpx.AsyncClient`` (default limits) doing the same GETs under an
  ``asyncio.Semaphore(--in-flight)``;
- NoETL again with ``NOETL_HTTP_MAX_KEEPALIVE_CONNECTIONS=20`` (httpx's own default; NoETL's is 50),
  to show what the keep-alive pool size costs (httpcore 1.0.x scans its pool quadratically).

Prints Markdown: calls/s per run, medians and the NoETL / plain ratio (target >= 0.50).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import httpx

TARGET = 0.50
KEEPALIVE_20 = {"NOETL_HTTP_MAX_KEEPALIVE_CONNECTIONS": "20"}
CLIENTS = (
    "NoETL parallel loop (defaults)",
    "plain httpx script",
    "NoETL, NOETL_HTTP_MAX_KEEPALIVE_CONNECTIONS=20",
)


# ------------------------------------------------------------------------------------------------
# The server (child process)
# ------------------------------------------------------------------------------------------------


class _Answer(asyncio.Protocol):
    """Answers each complete request head (GETs have no body) with ``{"path": ...}``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *heads, self.buffer = self.buffer.split(b"\r\n\r\n")
        out = []
        for head in heads:
            path = head.split(b" ", 2)[1].decode("latin-1")
            body = json.dumps({"path": path}).encode()
            out.append(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


async def _serve() -> None:
    server = await asyncio.get_running_loop().create_server(_Answer, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def start_server() -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, f"http://127.0.0.1:{child.stdout.readline().strip()}"


# ------------------------------------------------------------------------------------------------
# The two clients
# ------------------------------------------------------------------------------------------------


def playbook(base: str, calls: int, in_flight: int) -> str:
    return f"""apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: http_throughput}}
workflow:
  - step: start
    loop:
      in: "{{{{ range({calls}) | list }}}}"
      iterator: i
      spec: {{mode: parallel, max_in_flight: {in_flight}}}
    tool: {{kind: http, method: GET, url: "{base}/item/{{{{ i }}}}"}}
"""


def run_noetl(base: str, calls: int, in_flight: int, env: dict[str, str] | None = None) -> None:
    import noetl

    text = playbook(base, calls, in_flight)
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as home:
        os.environ.update(env or {}, NOETL_HOME=home)
        try:
            doc = noetl.run(text)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    if doc.get("status") != "completed":
        raise SystemExit(f"NoETL run did not complete: {doc.get('status')} {doc.get('error')}")


async def _plain(base: str, calls: int, in_flight: int) -> None:
    gate = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient() as client:

        async def get(i: int) -> None:
            async with gate:
                response = await client.get(f"{base}/item/{i}")
                response.raise_for_status()
                response.json()

        await asyncio.gather(*(get(i) for i in range(calls)))


def run_plain(base: str, calls: int, in_flight: int) -> None:
    asyncio.run(_plain(base, calls, in_flight))


def measure(run: Callable[..., None], *args: Any) -> tuple[float, float]:
    """Calls/s and this process's CPU ms per call (the server's CPU is not counted)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(*args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    calls = args[1]
    return calls / wall, cpu / calls * 1e3


# ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return

    server, base = start_server()
    try:
        run_plain(base, 100, args.in_flight)  # warm up imports and the server
        run_noetl(base, 100, args.in_flight)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
        for _ in range(args.reps):
            runs[CLIENTS[0]].append(measure(run_noetl, base, args.calls, args.in_flight))
            runs[CLIENTS[1]].append(measure(run_plain, base, args.calls, args.in_flight))
            runs[CLIENTS[2]].append(measure(run_noetl, base, args.calls, args.in_flight, KEEPALIVE_20))
    finally:
        server.terminate()
        server.wait()

    medians = {name: statistics.median(rate for rate, _ in values) for name, values in runs.items()}
    print(f"## HTTP: {args.calls:,} GETs, {args.in_flight} in flight, {args.reps} interleaved runs each\n")
    print("| client | calls/s per run | median calls/s | / plain | median client CPU ms/call |")
    print("|---|---|---:|---:|---:|")
    for name, values in runs.items():
        per_run = ", ".join(f"{rate:,.0f}" for rate, _ in values)
        ratio = medians[name] / medians[CLIENTS[1]]
        cpu = statistics.median(c for _, c in values)
        print(f"| {name} | {per_run} | {medians[name]:,.0f} | {ratio:.2f} | {cpu:.2f} |")
    ratio = medians[CLIENTS[0]] / medians[CLIENTS[1]]
    verdict = "meets" if ratio >= TARGET else "misses"
    print(f"\nNoETL (defaults) / plain = **{ratio:.2f}** ({verdict} the target of {TARGET:.2f})")


if __name__ == "__main__":
    main()
