"""The console's pure read models: graph layout, code lines in the playbook file, run-form fields."""

from __future__ import annotations

from noetl.api import apply_sets
from noetl.dsl.codelines import error_location
from noetl.dsl.parse import load_playbook_text
from noetl.server.console.graph import playbook_graph
from noetl.server.console.render import workload_fields

CYCLE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: cycle}
workflow:
  - step: start
    next: [{step: left}, {step: right}]
  - step: left
    next: [{step: join}]
  - step: right
    next: [{step: join}]
  - step: join
    next:
      - {step: start, when: "{{ vars.again }}"}
      - {step: end}
  - step: end
"""


def test_layers_fan_in_and_back_arcs() -> None:
    graph = playbook_graph(load_playbook_text(CYCLE).require())
    layers = {node.name: node.layer for node in graph.nodes}
    assert layers == {"start": 0, "left": 1, "right": 1, "join": 2, "end": 3}
    assert [n.name for n in graph.nodes if n.fan_in] == ["join"]
    back = [(e.source, e.target, e.label) for e in graph.edges if e.back]
    assert back == [("join", "start", "vars.again")]
    left, right = (next(n for n in graph.nodes if n.name == name) for name in ("left", "right"))
    assert left.y == right.y and left.x != right.x
    assert all(n.x >= 0 and n.x + 170 <= graph.width for n in graph.nodes)


CODE = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: lines}
workflow:
  - step: start
    next: [{step: block}]
  - step: block
    tool:
      kind: python
      code: |
        x = 1
        y = x / 0
    next: [{step: inline}]
  - step: inline
    tool: {kind: python, code: "raise ValueError('no')"}
"""


def test_code_lines_become_playbook_file_lines() -> None:
    assert error_location(CODE, "block", {"line": 2}, "p.yaml") == "p.yaml:12"
    assert error_location(CODE, "inline", {"line": 1}, "p.yaml") == "p.yaml:15"
    assert error_location(CODE, "block", {"message": "no line"}) is None
    assert error_location(CODE, "missing", {"line": 1}) is None


def test_run_form_fields_read_back_as_the_workload() -> None:
    workload = {"count": 10, "label": "10", "flag": True, "name": "ann", "db": {"port": 5432}, "tags": ["a"]}
    fields = workload_fields(workload)
    assert [f["key"] for f in fields] == ["count", "label", "flag", "name", "db.port", "tags"]
    assert apply_sets({}, [f"{f['key']}={f['value']}" for f in fields]) == workload


def test_a_result_the_page_cuts_says_where_the_whole_result_is() -> None:
    """3,000 numbers fit in 20,000 characters of compact JSON but not indented, as the page shows
    them: the page cut the result and did not say where the whole of it is."""
    from noetl.server.console.render import json_block, shown_in_part

    numbers = list(range(3000))
    assert "more characters not shown" in json_block(numbers)
    assert shown_in_part(numbers)
    assert not shown_in_part(list(range(10))) and "not shown" not in json_block(list(range(10)))


def test_a_long_result_is_encoded_only_as_far_as_the_page_shows_it() -> None:
    """A 10,000-iteration loop's results were encoded whole (twice) for a page that shows 20,000
    characters of them: the value past the cut is never reached."""
    from noetl.server.console.render import json_block, shown_in_part

    class Unreachable:
        def __str__(self) -> str:
            raise AssertionError("encoded past what the page shows")

    results = [{"i": i, "text": "x" * 20} for i in range(10_000)] + [Unreachable()]
    assert "more characters not shown" in json_block(results)
    assert shown_in_part(results)
