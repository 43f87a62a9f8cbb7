"""The examples of the users' guides on the distributed runtime (server, 2 workers, PostgreSQL),
registered and started through the REST API as the guides do, with the stand-in services; each
must give what the same example gives under `noetl run` (tests/acceptance/test_examples.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from test_distributed_cluster import Cluster

from noetl.demo.services import DemoServices, ServiceSettings, running_services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def examples_db(pg_cluster: dict[str, Any]) -> dict[str, Any]:
    """A database of its own for what the examples write, and the pg_local credential's data for it."""
    name = "examples_" + uuid.uuid4().hex[:8]
    with psycopg.connect(host=pg_cluster["socket_dir"], port=pg_cluster["port"], user=pg_cluster["superuser"],
                         dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{pg_cluster["user"]}"')
    data = {key: pg_cluster[key] for key in ("host", "port", "user", "password")}
    return {**data, "database": name}


@pytest.fixture(scope="module")
def cluster(two_worker_deployment: Cluster, examples_db: dict[str, Any]) -> Cluster:
    credential = {"name": "pg_local", "type": "postgres", "data": examples_db}
    response = two_worker_deployment.client.post("/api/credentials", json=credential)
    assert response.status_code in (200, 201), response.text
    for path in sorted(EXAMPLES.glob("*/*.yaml")):
        if path.parent.name != "credentials":
            two_worker_deployment.register(path.read_text())
    return two_worker_deployment


@pytest.fixture(scope="module")
def services() -> Iterator[DemoServices]:
    with running_services(ServiceSettings(latency_ms=10)) as server:
        yield server


def run(cluster: Cluster, path: str, payload: dict[str, Any] | None = None, timeout: float = 120) -> dict[str, Any]:
    doc = cluster.wait(cluster.execute(path, payload or {}), timeout=timeout)
    assert doc["status"] == "completed", doc["error"]
    return doc


def item_ids(result: Any) -> list[int]:
    return [item["id"] for item in (result if isinstance(result, list) else result["items"])]


def test_hello(cluster: Cluster) -> None:
    doc = run(cluster, "examples/hello")
    assert [r["message"] for r in doc["steps"]["start"]["result"]["results"]] == [
        "Hello, Ada!", "Hello, Grace!", "Hello, Linus!"]


def test_pagination_case_era_and_canonical(cluster: Cluster, services: DemoServices) -> None:
    case = run(cluster, "examples/pagination", {"api_url": services.url})
    assert item_ids(case["result"]) == list(range(1, 36))
    canonical = run(cluster, "examples/pagination_canonical", {"api_url": services.url, "page_size": 5})
    assert item_ids(canonical["result"]) == list(range(1, 36)) and canonical["result"]["pages"] == 7


def test_batch_execution(cluster: Cluster, services: DemoServices, examples_db: dict[str, Any]) -> None:
    doc = run(cluster, "batch_execution/multi_playbook_batch", {
        "services_url": services.url, "base_url": f"{services.url}/v1",
        "baseFilePath": str(cluster.home / "batch-files")})
    assert doc["result"] == {"status": "completed"}
    assert doc["completed_steps"] == ["start", "run_http_test", "run_weather_processing", "run_data_transformation",
                                      "store_results", "check_stored", "end"]
    with psycopg.connect(**{k: v for k, v in examples_db.items() if k != "database"}, dbname=examples_db["database"],
                         row_factory=dict_row) as conn:
        rows = conn.execute("SELECT http_result::jsonb->>'status' AS h, weather_result::jsonb->>'status' AS w, "
                            "data_result::jsonb->>'status' AS d FROM playbook_batch_results "
                            "WHERE execution_id = %s", [doc["execution_id"]]).fetchall()
    assert rows == [{"h": "success", "w": "success", "d": "success"}]


def test_traveler_batch(cluster: Cluster, services: DemoServices) -> None:
    doc = run(cluster, "examples/traveler_batch/traveler_batch_enrichment_in_step", {
        "profile_api_url": f"{services.url}/anything/traveler-profile", "seed_rows": 200, "batch_size": 50,
        "max_batches": 4}, timeout=180)
    summary = doc["result"]
    assert summary["execution"] == {"batch_worker_iterations": 4, "batch_worker_failed_iterations": 0,
                                    "rows_processed_by_workers": 200}
    assert summary["data"]["missing_rows"] == 0
