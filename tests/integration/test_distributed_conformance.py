"""Every conformance case on the distributed runtime: PostgreSQL, a server and 2 worker processes.

Each case is registered and executed through the REST API and compared exactly as on the local
runtime (tests/acceptance/test_conformance.py). The status document rebuilt from the stored events
must equal the API's, and every case must also give the same document as `noetl run`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from acceptance.test_conformance import check_outcome
from test_distributed_cluster import Cluster

from noetl.api import apply_sets, parse_payload, run_playbook
from noetl.engine.events import Event
from noetl.engine.status import status_document

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"
CASES = sorted(p.stem for p in CONFORMANCE.glob("*.yaml"))


@pytest.fixture
def cluster(two_worker_deployment: Cluster) -> Cluster:
    return two_worker_deployment


def request_of(args: list[str]) -> tuple[dict[str, Any], bool]:
    """The `noetl run` arguments a case may carry (`--payload JSON`, `--set k=v`, `--strict`) as the
    execute request's payload and `strict`."""
    payload: dict[str, Any] = {}
    sets: list[str] = []
    strict = False
    items = iter(args)
    for flag in items:
        if flag == "--strict":
            strict = True
        elif flag == "--payload":
            payload.update(parse_payload(next(items)))
        elif flag == "--set":
            sets.append(next(items))
        else:
            raise AssertionError(f"unsupported case argument {flag}")
    return apply_sets(payload, sets), strict


@pytest.mark.parametrize("case", CASES)
def test_conformance_case_on_the_distributed_runtime(case: str, cluster: Cluster) -> None:
    expect = json.loads((CONFORMANCE / f"{case}.expect.json").read_text())
    text = (CONFORMANCE / f"{case}.yaml").read_text()
    entry = cluster.register(text)
    payload, strict = request_of(expect.get("args", []))
    execution_id = cluster.execute(entry["path"], payload, strict=strict)
    doc = cluster.wait(execution_id)
    check_outcome(doc, 0 if doc["status"] == "completed" else 1, expect)

    events = cluster.client.get(f"/api/executions/{execution_id}/events").json()
    assert status_document([Event.from_dict(e) for e in events]) == doc
    assert [e["event_id"] for e in events] == list(range(1, len(events) + 1))

    local = run_playbook(text, payload=payload, store_url="memory://", strict=strict)
    assert _comparable(local) == _comparable(doc)


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without what differs between two runs (ids, times)."""
    skip = {"execution_id", "started_at", "ended_at", "duration_seconds"}
    return {k: v for k, v in doc.items() if k not in skip}


UNDEFINED_IN_TOOLS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: undefined_in_tools, path: tests/undefined_in_tools}
workload: {items: [1, 2]}
workflow:
  - step: start
    tool: {kind: noop, result: {a: "{{ in_tool_config }}"}}
    next: [{step: looped}]
  - step: looped
    loop: {in: "{{ items }}", iterator: n}
    tool: {kind: noop, result: {b: "{{ in_loop_tool }}"}}
    next: [{step: piped}]
  - step: piped
    tool:
      - name: first
        kind: noop
        result: {c: "{{ in_pipeline_task }}"}
"""


def test_template_warnings_of_tool_configs_reach_the_status_document(cluster: Cluster) -> None:
    """Undefined names in a tool's config are rendered by the worker, and reported with its call;
    the status document lists them as `noetl run` does (SPEC section 3)."""
    entry = cluster.register(UNDEFINED_IN_TOOLS)
    doc = cluster.wait(cluster.execute(entry["path"]))
    assert doc["status"] == "completed", doc
    named = " ".join(warning["message"] for warning in doc["warnings"])
    for name in ("in_tool_config", "in_loop_tool", "in_pipeline_task"):
        assert name in named, doc["warnings"]
    local = run_playbook(UNDEFINED_IN_TOOLS, store_url="memory://")
    assert doc["warnings"] == local["warnings"]


def test_result_in_a_step_input_on_the_distributed_runtime(cluster: Cluster) -> None:
    """`result` in a step's input is the result of the step whose arc scheduled it (SPEC section 3)."""
    from acceptance.test_spec_local import RESULT_IN_INPUT

    text = RESULT_IN_INPUT.replace("name: result_in_input}", "name: result_in_input, path: tests/result_in_input}")
    doc = cluster.wait(cluster.execute(cluster.register(text)["path"]))
    assert doc["status"] == "completed", doc["error"]
    assert doc["steps"]["single"]["result"] == {"prev": 1, "items": [1, 2]}
    assert doc["steps"]["looped"]["result"]["results"] == [13, 23]
