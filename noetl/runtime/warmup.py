"""What a long-running worker process loads before it leases its first command.

The modules a worker needs for its first commands are imported on first use (a short-lived
``noetl run`` must not pay for what it does not use): the playbook checker, YAML, the tools. A
worker would otherwise pay that with its first commands leased, under their leases, while every
execution waiting behind them waits too. It pays it once here, before it leases anything.
"""

from __future__ import annotations

import logging

from noetl.dsl.parse import load_playbook_text
from noetl.errors import NoetlError
from noetl.tools.base import get_tool

log = logging.getLogger("noetl.worker")

# The checks every playbook passes through (a loop, a python step with input, a `when` arc): their
# modules are imported and their patterns compiled. Never run.
WARM_UP_PLAYBOOK = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: worker_warm_up, path: noetl/worker_warm_up}
workload: {n: 2}
workflow:
  - step: start
    loop: {in: "{{ range(workload.n) | list }}", iterator: i, spec: {mode: parallel}}
    tool: {kind: python, input: {i: "{{ i }}"}, code: "result = i"}
    next: {arcs: [{step: end, when: "{{ start.result is defined }}"}]}
  - step: end
    tool: {kind: noop}
"""

# The tools of nearly every playbook; others load with their first command.
COMMON_TOOLS = ("noop", "python")


def warm_up() -> None:
    """Parse and check a small playbook and load the common tools; a failure only costs the time
    it saves (the first commands load what they need, as they would without it)."""
    try:
        load_playbook_text(WARM_UP_PLAYBOOK, "<worker warm-up>").require()
        for kind in COMMON_TOOLS:
            get_tool(kind)
    except (NoetlError, ImportError) as exc:
        log.debug("worker warm-up skipped: %s", exc)
