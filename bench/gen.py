"""Generate benchmark playbooks (chains of steps, loops) as YAML text."""

from __future__ import annotations

TOOLS = {
    "noop": "{kind: noop}",
    "python": '{kind: python, code: "result = 1"}',
    "python-inline": '{kind: python, isolation: inline, code: "result = 1"}',
}


def chain(n: int, kind: str) -> str:
    """``n`` steps in a row; ``kind`` is noop, python (default thread isolation) or python-inline."""
    tool = TOOLS.get(kind, TOOLS["python"])
    name = f"chain_{kind.replace('-', '_')}_{n}"
    lines = ["apiVersion: noetl.io/v2", "kind: Playbook", f"metadata: {{name: {name}}}", "workflow:"]
    for i in range(n):
        nxt = f"\n    next: {{arcs: [{{step: s{i + 1}}}]}}" if i < n - 1 else ""
        lines.append(f"  - step: s{i}\n    tool: {tool}{nxt}")
    return "\n".join(lines) + "\n"


def mixed_chain(n: int, kinds: list[str], path: str | None = None) -> str:
    """``n`` steps in a row, step ``i`` of kind ``kinds[i % len(kinds)]`` (the kinds of ``chain``);
    ``path``: the catalog path (metadata.path) to register it under."""
    name = f"chain_mixed_{n}"
    meta = f"{{name: {name}, path: {path}}}" if path else f"{{name: {name}}}"
    lines = ["apiVersion: noetl.io/v2", "kind: Playbook", f"metadata: {meta}", "workflow:"]
    for i in range(n):
        tool = TOOLS.get(kinds[i % len(kinds)], TOOLS["python"])
        nxt = f"\n    next: {{arcs: [{{step: s{i + 1}}}]}}" if i < n - 1 else ""
        lines.append(f"  - step: s{i}\n    tool: {tool}{nxt}")
    return "\n".join(lines) + "\n"


def loop(n: int, mode: str, max_in_flight: int = 16) -> str:
    return f"""apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: loop_{mode}_{n}}}
workflow:
  - step: start
    loop: {{in: "{{{{ range({n}) | list }}}}", iterator: i, spec: {{mode: {mode}, max_in_flight: {max_in_flight}}}}}
    tool: {{kind: python, input: {{i: "{{{{ i }}}}"}}, code: "result = i * 2"}}
"""
