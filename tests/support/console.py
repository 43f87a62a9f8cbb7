"""The web console as a user starts it: `noetl ui` in a subprocess over a private NOETL_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from noetl.demo.postgres import free_port
from support.waiting import STARTUP_SECONDS


@contextmanager
def console_process(home: Path, *, token: str | None = None, tokens: str | None = None) -> Iterator[str]:
    """Start ``noetl ui`` on a free port; yield its base URL; stop it."""
    port = free_port()
    env = {**os.environ, "NOETL_HOME": str(home)}
    env.pop("NOETL_API_TOKEN", None)
    env.pop("NOETL_API_TOKENS", None)
    if token:
        env["NOETL_API_TOKEN"] = token
    if tokens:
        env["NOETL_API_TOKENS"] = tokens
    process = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "ui", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _wait_ready(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"noetl ui exited: {process.stderr.read() if process.stderr else ''}")
        try:
            httpx.get(f"{url}/console/static/console.css", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"noetl ui did not start within {STARTUP_SECONDS} s")
