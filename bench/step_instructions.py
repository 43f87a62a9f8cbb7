"""One ``noetl.run`` of a chain, for counting instructions per step under valgrind.

PYTHONHASHSEED=0 valgrind --tool=callgrind python bench/step_instructions.py KIND N
    instructions per step = (I(N = 1010) - I(N = 10)) / 1000

KIND: noop, python, python-inline. The runtime's timers are switched off (the execution's yield
to the loop every few ms, a lone thread-mode step's brief wait, the cancel watcher's and the log
flusher's polls, the age limit of a group of held decisions): under valgrind a step runs ~40x
slower, so with them on, how much timer-driven work a step does (and how many decisions a group
holds) follows the machine's load, and so would the count. Point PYTHONPATH at another
tree's ``noetl`` to count that tree.
"""

from __future__ import annotations

import os
import sys
import tempfile

from gen import chain

import noetl
import noetl.runtime.local as local_runtime
import noetl.runtime.logstream as logstream
import noetl.tools.python_threads as python_threads

NEVER = 3600.0


def main(kind: str, steps: int) -> None:
    local_runtime.CANCEL_POLL_SECONDS = local_runtime.YIELD_SECONDS = NEVER
    local_runtime.HOLD_SECONDS = NEVER  # effect-free decisions are then stored in groups of HOLD_DECISIONS
    logstream.FLUSH_SECONDS = python_threads.BRIEF_WAIT_SECONDS = NEVER
    for text in (chain(2, kind), chain(steps, kind)):  # a warm-up run, then the counted one
        with tempfile.TemporaryDirectory(prefix="noetl-bench-") as home:
            os.environ["NOETL_HOME"] = home
            doc = noetl.run(text)
        if doc.get("status") != "completed":
            raise SystemExit(f"benchmark playbook did not complete: {doc.get('status')} {doc.get('error')}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "python", int(sys.argv[2]) if len(sys.argv) > 2 else 1010)
