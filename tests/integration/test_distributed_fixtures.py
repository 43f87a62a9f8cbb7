"""Every fixture playbook with an expected outcome (tests/fixtures/playbooks/NAME.expect.json) on
the distributed runtime: registered and executed through the REST API on server + 2 workers over
PostgreSQL, it must end as `noetl run` does (tests/acceptance/test_playbooks.py), and the status
document must equal the fold of its stored event log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from acceptance.test_conformance import check_outcome
from test_distributed_cluster import Cluster
from test_distributed_conformance import request_of

from noetl.engine.events import Event
from noetl.engine.status import status_document

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks"
# A registered playbook has no file beside it: a child named by a file path runs locally only.
FILE_BOUND = {"child_parent"}
CASES = sorted(p.name.removesuffix(".expect.json") for p in FIXTURES.glob("*.expect.json")
               if p.name.removesuffix(".expect.json") not in FILE_BOUND)


@pytest.mark.parametrize("case", CASES)
def test_fixture_playbook_on_the_distributed_runtime(case: str, two_worker_deployment: Cluster) -> None:
    cluster = two_worker_deployment
    expect = json.loads((FIXTURES / f"{case}.expect.json").read_text())
    args = list(expect.get("args", []))
    merge = "--merge" in args
    payload, strict = request_of([a for a in args if a != "--merge"])
    entry = cluster.register((FIXTURES / f"{case}.yaml").read_text())
    body = {"path": entry["path"], "payload": payload, "merge": merge, "strict": strict}
    response = cluster.client.post("/api/execute", json=body)
    assert response.status_code == 200, response.text
    execution_id = response.json()["execution_id"]
    doc = cluster.wait(execution_id)
    check_outcome(doc, 0 if doc["status"] == "completed" else 1, expect)
    events = cluster.client.get(f"/api/executions/{execution_id}/events").json()
    assert status_document([Event.from_dict(e) for e in events]) == doc
