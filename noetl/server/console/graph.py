"""The playbook as a graph, laid out in layers (top to bottom) for the console's SVG.

A small Sugiyama-style layout: arcs that close a cycle (loops back to an earlier step) are set
aside, every other step sits one layer below its deepest predecessor, steps in a layer are ordered
by the mean position of their predecessors, and the set-aside arcs are drawn as curves on the side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from noetl.dsl.model import Playbook

NODE_WIDTH = 170
NODE_HEIGHT = 46
LAYER_GAP = 70
NODE_GAP = 30
MARGIN = 20


@dataclass(slots=True)
class Node:
    name: str
    kind: str
    loop: bool
    x: int = 0
    y: int = 0
    layer: int = 0
    fan_in: bool = False


@dataclass(slots=True)
class Edge:
    source: str
    target: str
    label: str = ""
    back: bool = False  # closes a cycle: drawn as a curve on the side
    path: str = ""  # SVG path data


@dataclass(slots=True)
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: int = 0
    height: int = 0


def playbook_graph(playbook: Playbook) -> Graph:
    steps = playbook.step_map()
    edges = [Edge(step.step, arc.step, _label(arc.when)) for step in playbook.workflow
             for arc in step.next.arcs if arc.step and arc.step in steps]
    nodes = {name: Node(name, step.kind, step.loop is not None) for name, step in steps.items()}
    _mark_back_edges(playbook.entry_step, list(steps), edges)
    _assign_layers(list(steps), edges, nodes)
    for node in nodes.values():
        node.fan_in = sum(1 for e in edges if e.target == node.name and not e.back) > 1
    graph = Graph(nodes=list(nodes.values()), edges=edges)
    _place(graph, nodes)
    return graph


def _label(when: str | bool | None) -> str:
    if when is None or when is True:
        return ""
    text = str(when).replace("{{", "").replace("}}", "").strip()
    return text if len(text) <= 28 else text[:27] + "…"


def _mark_back_edges(entry: str, names: list[str], edges: list[Edge]) -> None:
    """Depth-first from the entry step (then any unreached step): an arc to a step still on the
    stack closes a cycle."""
    outgoing: dict[str, list[Edge]] = {name: [] for name in names}
    for edge in edges:
        outgoing[edge.source].append(edge)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in [entry, *names]:
        if root in state or root not in outgoing:
            continue
        stack = [(root, iter(outgoing[root]))]
        state[root] = 1
        while stack:
            name, pending = stack[-1]
            step_arc = next(pending, None)
            if step_arc is None:
                state[name] = 2
                stack.pop()
            elif state.get(step_arc.target) == 1:
                step_arc.back = True
            elif step_arc.target not in state:
                state[step_arc.target] = 1
                stack.append((step_arc.target, iter(outgoing[step_arc.target])))


def _assign_layers(names: list[str], edges: list[Edge], nodes: dict[str, Node]) -> None:
    forward = [e for e in edges if not e.back]
    incoming: dict[str, list[str]] = {name: [] for name in names}
    for edge in forward:
        incoming[edge.target].append(edge.source)
    done: dict[str, int] = {}
    # Kahn's order over the acyclic arcs: each step one layer below its deepest predecessor.
    waiting = {name: len(incoming[name]) for name in names}
    ready = [name for name in names if waiting[name] == 0]
    while ready:
        name = ready.pop(0)
        done[name] = max((done[p] + 1 for p in incoming[name] if p in done), default=0)
        for edge in forward:
            if edge.source == name:
                waiting[edge.target] -= 1
                if waiting[edge.target] == 0:
                    ready.append(edge.target)
    for name in names:
        nodes[name].layer = done.get(name, 0)


def _place(graph: Graph, nodes: dict[str, Node]) -> None:
    layers: dict[int, list[Node]] = {}
    for node in graph.nodes:
        layers.setdefault(node.layer, []).append(node)
    position: dict[str, float] = {}
    for layer in sorted(layers):
        row = layers[layer]
        if layer:
            preds = {n.name: [position[e.source] for e in graph.edges
                              if e.target == n.name and not e.back and e.source in position] for n in row}
            row.sort(key=lambda n: sum(preds[n.name]) / len(preds[n.name]) if preds[n.name] else 1e9)
        for index, node in enumerate(row):
            position[node.name] = index
    widest = max(len(row) for row in layers.values())
    graph.width = MARGIN * 2 + widest * NODE_WIDTH + (widest - 1) * NODE_GAP + 60
    graph.height = MARGIN * 2 + len(layers) * NODE_HEIGHT + (len(layers) - 1) * LAYER_GAP
    for layer, row in layers.items():
        offset = (widest - len(row)) * (NODE_WIDTH + NODE_GAP) / 2
        for index, node in enumerate(row):
            node.x = int(MARGIN + offset + index * (NODE_WIDTH + NODE_GAP))
            node.y = MARGIN + layer * (NODE_HEIGHT + LAYER_GAP)
    for edge in graph.edges:
        edge.path = _path(nodes[edge.source], nodes[edge.target], edge.back)


def _path(source: Node, target: Node, back: bool) -> str:
    if back or source.name == target.name:
        # Out of the right side of the source, around, into the right side of the target.
        x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT // 2
        x2, y2 = target.x + NODE_WIDTH, target.y + NODE_HEIGHT // 2
        bulge = max(x1, x2) + 50
        return f"M{x1},{y1} C{bulge},{y1} {bulge},{y2} {x2 + 6},{y2}"
    x1, y1 = source.x + NODE_WIDTH // 2, source.y + NODE_HEIGHT
    x2, y2 = target.x + NODE_WIDTH // 2, target.y - 6
    middle = (y1 + y2) // 2
    return f"M{x1},{y1} C{x1},{middle} {x2},{middle} {x2},{y2}"
