"""Waiting in tests for something another process does: poll, never a fixed sleep."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# How long a `noetl` server (or console) process may take to answer its first request. Seconds on an
# idle machine; a CI runner busy with the rest of the suite has been seen to need more than 30.
STARTUP_SECONDS = 90


def until(what: str, check: Callable[[], T], seconds: float = 60) -> T:
    """The first truthy value of ``check()``, polled every 0.1 s; AssertionError after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def gated_loop_playbook(name: str, iterations: int, pause: float, *, path: str | None = None,
                        release: str = "") -> str:
    """A playbook of one loop step whose first iteration waits (up to 60 s) for the file named by
    ``workload.release`` (``--set release=FILE``) and whose every iteration then sleeps ``pause``:
    its execution is still running when a test looks for it, however slowly `noetl run` starts."""
    metadata = f"{{name: {name}, path: {path}}}" if path else f"{{name: {name}}}"
    return f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {metadata}
workload: {{release: {json.dumps(release)}}}
workflow:
  - step: start
    loop: {{in: "{{{{ range({iterations}) | list }}}}", iterator: i}}
    tool:
      kind: python
      input: {{i: "{{{{ iter.i }}}}", release: "{{{{ workload.release }}}}"}}
      code: |
        import os, time
        deadline = time.monotonic() + 60
        while i == 0 and time.monotonic() < deadline and not os.path.exists(release):
            time.sleep(0.02)
        time.sleep({pause})
        result = 1
"""
