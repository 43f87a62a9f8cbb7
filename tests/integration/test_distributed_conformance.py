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
