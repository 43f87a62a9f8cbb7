"""The pipeline fixtures (tests/fixtures/playbooks/pipelines) on server + 2 workers over PostgreSQL,
against the demo services and the local HTTP test server: the same outcome as `noetl run`, and the
status document equals the fold of the stored event log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from acceptance.test_conformance import check_outcome
from test_distributed_cluster import Cluster

from noetl.demo.services import DemoServices, running_services
from noetl.engine.events import Event
from noetl.engine.status import status_document

PIPELINES = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks" / "pipelines"
# A registered playbook has no file beside it, so the fixture reading ./transform.py runs locally only.
FILE_BOUND = {"python_libs_and_scripts"}
CASES = sorted(p.name.removesuffix(".expect.json") for p in PIPELINES.glob("*.expect.json")
               if p.name.removesuffix(".expect.json") not in FILE_BOUND)


@pytest.fixture
def cluster(two_worker_deployment: Cluster) -> Cluster:
    return two_worker_deployment


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServices]:
    with running_services() as services:
        yield services


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_pipeline_fixture_on_the_distributed_runtime(case: str, cluster: Cluster, http_server,  # type: ignore[no-untyped-def]
                                                     demo: DemoServices) -> None:
    expect = json.loads((PIPELINES / f"{case}.expect.json").read_text())
    entry = cluster.register((PIPELINES / f"{case}.yaml").read_text())
    execution_id = cluster.execute(entry["path"], {"api": http_server.url, "demo": demo.url})
    doc = cluster.wait(execution_id)
    check_outcome(doc, 0 if doc["status"] == "completed" else 1, expect)
    events = cluster.client.get(f"/api/executions/{execution_id}/events").json()
    assert status_document([Event.from_dict(e) for e in events]) == doc
