"""Results by reference on the distributed runtime: PostgreSQL's result table, a server, 2 workers.

The same playbooks as the local acceptance tests (tests/fixtures/playbooks/results) must give the
same documents, with references resolved by whichever worker renders the next template.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_distributed_cluster import Cluster, create_database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks" / "results"


@pytest.fixture
def cluster(two_worker_deployment: Cluster) -> Cluster:
    return two_worker_deployment


def test_big_results_travel_by_reference_between_workers(cluster: Cluster) -> None:
    entry = cluster.register((FIXTURES / "big_results.yaml").read_text())
    execution_id = cluster.execute(entry["path"])
    doc = cluster.wait(execution_id)
    assert doc["status"] == "completed", doc["error"]
    start = doc["steps"]["start"]["result"]
    assert (start["count"], start["status"]) == (5000, "ok")
    assert start["_ref"]["uri"].startswith("noetl://result/")
    assert doc["result"] == {"picks": [1, 2400, 0, 5000], "ref": start["_ref"]["uri"]}

    (biggest,) = cluster.sql("SELECT max(octet_length(result::text)) FROM noetl.event WHERE execution_id = %s",
                             int(execution_id))
    assert biggest[0] < 8 * 1024
    (stored,) = cluster.sql("SELECT count(*) FROM noetl.result WHERE execution_id = %s", execution_id)
    assert stored[0] == 4

    whole = cluster.client.get(f"/api/executions/{execution_id}/results/start")
    assert whole.status_code == 200 and whole.json()["data"]["rows"][4999]["i"] == 4999
    one = cluster.client.get(f"/api/executions/{execution_id}/results/loop", params={"index": 1})
    assert one.status_code == 200 and len(one.json()["rows"]) == 1600
    assert cluster.client.get(f"/api/executions/{execution_id}/results/loop", params={"index": 9}).status_code == 400
    assert cluster.client.get(f"/api/executions/{execution_id}/results/nope").status_code == 404
    assert cluster.client.get("/api/executions/1/results/start").status_code == 404


def test_artifacts_and_selects_on_workers(cluster: Cluster) -> None:
    entry = cluster.register((FIXTURES / "stores_and_select.yaml").read_text())
    doc = cluster.wait(cluster.execute(entry["path"]))
    assert doc["status"] == "completed", doc["error"]
    # `kind: memory` cannot live in one worker's memory: another process may read it.
    assert doc["result"] == {"by_ref": 3, "by_name": 2, "start_scheme": "file", "memory_scheme": "noetl"}


def test_the_reaper_deletes_results_past_their_ttl(pg_cluster: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    from noetl.runtime.distributed import DecisionCore
    from noetl.runtime.reaper import Reaper
    from noetl.store.base import ResultRecord
    from noetl.store.postgres import PostgresStore

    async def scenario() -> tuple[Any, Any]:
        async with PostgresStore(create_database(pg_cluster)) as store:
            for result_id, expires in (("old", "2020-01-01T00:00:00+00:00"), ("live", "2999-01-01T00:00:00+00:00")):
                await store.put_result(ResultRecord(result_id=result_id, data=b"1", sha256="s", size=1,
                                                    expires_at=expires))
            core = DecisionCore(store, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(0.3, stop.set)
            await Reaper(core).run(stop, interval=0.05)
            return await store.get_result("old"), await store.get_result("live")

    old, live = asyncio.run(scenario())
    assert old is None and live is not None


def test_noetl_result_against_the_server(cluster: Cluster, tmp_path: Path) -> None:
    from acceptance.conftest import run_noetl

    entry = cluster.register((FIXTURES / "pipeline_big.yaml").read_text())
    doc = cluster.wait(cluster.execute(entry["path"]))
    assert doc["status"] == "completed", doc["error"]
    fetched = run_noetl("--server-url", cluster.url, "result", doc["execution_id"], "start", home=tmp_path)
    assert fetched.code == 0, fetched.stderr
    assert fetched.json() == {"n": 3000, "last": 2999}
    missing = run_noetl("--server-url", cluster.url, "result", doc["execution_id"], "nope", home=tmp_path)
    assert missing.code == 2 and "no result for step 'nope'" in missing.stderr


def test_noetl_result_through_the_server_writes_the_servers_bytes(cluster: Cluster, tmp_path: Path) -> None:
    # A result of any size: the command hands the server's JSON on as it arrives, to stdout or to
    # --output, and a refused request leaves --output untouched.
    import httpx
    from acceptance.conftest import run_noetl

    entry = cluster.register((FIXTURES / "pipeline_big.yaml").read_text())
    doc = cluster.wait(cluster.execute(entry["path"]))
    assert doc["status"] == "completed", doc["error"]
    served = httpx.get(f"{cluster.url}/api/executions/{doc['execution_id']}/results/start").content
    printed = run_noetl("--server-url", cluster.url, "result", doc["execution_id"], "start", home=tmp_path)
    assert printed.code == 0 and printed.stdout.encode() == served + b"\n", printed.stderr
    target = tmp_path / "start.json"
    written = run_noetl("--server-url", cluster.url, "result", doc["execution_id"], "start", "-o", str(target),
                        home=tmp_path)
    assert written.code == 0 and target.read_bytes() == served + b"\n", written.stderr
    assert written.stderr.strip() == f"wrote {target} ({len(served)} bytes)"
    kept = tmp_path / "kept.json"
    kept.write_text("mine")
    missing = run_noetl("--server-url", cluster.url, "result", doc["execution_id"], "nope", "-o", str(kept),
                        home=tmp_path)
    assert missing.code == 2 and "no result for step 'nope'" in missing.stderr
    assert kept.read_text() == "mine"


def test_workers_without_database_access_read_results_through_the_server(cluster: Cluster) -> None:
    from noetl.errors import NotFoundError
    from noetl.results.remote import ServerResultReader

    entry = cluster.register((FIXTURES / "big_results.yaml").read_text())
    doc = cluster.wait(cluster.execute(entry["path"]))
    uri = doc["steps"]["start"]["result"]["_ref"]["uri"]
    reader = ServerResultReader(cluster.url, token=None)
    try:
        assert reader.read(uri)["data"]["rows"][4999]["i"] == 4999
        with pytest.raises(NotFoundError):
            reader.read("noetl://result/nothing-here")
    finally:
        reader.close()
    # Only the result table: never a file of the server's machine.
    refused = cluster.client.get("/api/results", params={"uri": "file:///etc/passwd"})
    assert refused.status_code == 400 and "root:" not in refused.text


def test_a_big_loop_aggregate_is_read_back_from_the_iterations_reports(cluster: Cluster) -> None:
    entry = cluster.register((FIXTURES / "loop_aggregate.yaml").read_text())
    execution_id = cluster.execute(entry["path"])
    doc = cluster.wait(execution_id, timeout=300)
    assert doc["status"] == "completed", doc["error"]
    # The same document as on the local runtime: one item, the length, a slice, a walk over all.
    assert doc["result"] == {"last": {"i": 1499, "sq": 1499 * 1499}, "fifth": 25, "count": 1500,
                             "total": sum(range(1500)), "firsts": [{"i": 0, "sq": 0}, {"i": 1, "sq": 1}],
                             "stats": {"total": 1500, "success": 1500, "failed": 0}}
    ref = doc["steps"]["start"]["result"]["results"]["_ref"]
    assert ref["uri"] == f"noetl://loop/{execution_id}/1/start" and ref["count"] == 1500
    (biggest,) = cluster.sql("SELECT max(octet_length(result::text)) FROM noetl.event WHERE execution_id = %s "
                             "AND event_type IN ('loop.done', 'step.exit')", execution_id)
    assert biggest[0] < 400

    one = cluster.client.get(f"/api/executions/{execution_id}/results/start", params={"index": 1234})
    assert one.status_code == 200 and one.json() == {"i": 1234, "sq": 1234 * 1234}
    assert cluster.client.get(f"/api/executions/{execution_id}/results/start",
                              params={"index": 1500}).status_code == 400
    whole = cluster.client.get(f"/api/executions/{execution_id}/results/start")
    assert whole.status_code == 200
    assert whole.json() == {"results": [{"i": i, "sq": i * i} for i in range(1500)],
                            "stats": {"total": 1500, "success": 1500, "failed": 0}}
    # Workers without database access read a slice through the server, never more than asked.
    page = cluster.client.get("/api/results", params={"uri": ref["uri"], "start": 10, "stop": 13})
    assert page.status_code == 200 and page.json() == [{"i": i, "sq": i * i} for i in (10, 11, 12)]
    too_many = cluster.client.get("/api/results", params={"uri": ref["uri"], "start": 0, "stop": 10**6})
    assert too_many.status_code == 400 and "at most" in too_many.json()["error"]


FORGED_REFERENCES = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: forged_references, path: attacks/forged_references}
workload: {planted: null, uri: null}
workflow:
  - step: start
    next: [{step: by_template}, {step: forged}]
  - step: by_template
    tool: {kind: python, input: {v: "{{ workload.planted.password }}"}, code: "result = {'got': v}"}
  - step: forged
    tool: {kind: python, input: {uri: "{{ workload.uri }}"}, code: "result = {'_ref': {'uri': uri, 'size': 1, 'sha256': '0'}}"}
"""


def test_a_reference_naming_a_file_of_the_host_is_never_read(cluster: Cluster, tmp_path: Path) -> None:
    # An execute token chooses the payload; a playbook chooses its steps' results: neither may make
    # a worker or the server read one of its own files as a result.
    private = tmp_path / "private.json"
    private.write_text('{"password": "file-content-never-read"}')
    entry = cluster.register(FORGED_REFERENCES)
    planted = {"_ref": {"uri": private.as_uri(), "size": 30, "sha256": "0"}}
    execution_id = cluster.execute(entry["path"], {"planted": planted, "uri": private.as_uri()})
    doc = cluster.wait(execution_id)
    assert doc["steps"]["by_template"]["status"] == "failed"
    assert "outside the results directory" in doc["steps"]["by_template"]["error"]["message"]
    answer = cluster.client.get(f"/api/executions/{execution_id}/results/forged")
    assert answer.status_code == 400, answer.text
    assert "outside the results directory" in answer.json()["detail"]
    events = cluster.client.get(f"/api/executions/{execution_id}/events")
    for text in (answer.text, events.text, str(doc)):
        assert "file-content-never-read" not in text
