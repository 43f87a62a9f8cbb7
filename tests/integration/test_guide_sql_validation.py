"""Guide 003's validation section on a server: the traveler batch runs on the distributed runtime
with its tables in NoETL's own database (as the guide's deployment has them), then every query the
guide prints runs as printed through `noetl --host H --port P query`, with the server's SQL
endpoint on and its reader role made by `noetl db init` run as a superuser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from test_distributed_cluster import Cluster, create_database, free_port

from noetl.demo.services import ServiceSettings, running_services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "traveler_batch"


def superuser_url(pg: dict[str, Any], url: str) -> str:
    return f"postgresql://{pg['superuser']}@/{url.rsplit('/', 1)[1]}?host={pg['socket_dir']}&port={pg['port']}"


@pytest.fixture
def cluster(pg_cluster: dict[str, Any], tmp_path: Path) -> Any:
    url = create_database(pg_cluster)
    with psycopg.connect(superuser_url(pg_cluster, url), autocommit=True) as admin:  # another application's table
        admin.execute("CREATE TABLE public.other_app_users (login TEXT, password_hash TEXT)")
    # As the docs say: `noetl db init` once as a role that may create roles (here the cluster's
    # superuser); NoETL's tables still belong to the database's owner, the server's role.
    init = subprocess.run([sys.executable, "-m", "noetl.cli.main", "db", "init", "--database-url",
                           superuser_url(pg_cluster, url)], capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["sql_reader_role"]
    deployment = Cluster(url, tmp_path / "c", env={"NOETL_ENABLE_SQL_API": "true"})
    try:
        deployment.start_server()
        deployment.start_worker("w1", concurrency=8)
        deployment.start_worker("w2", concurrency=8)
        parts = urlsplit(url)
        data = {"host": parts.hostname, "port": parts.port, "user": parts.username, "password": parts.password,
                "database": parts.path.lstrip("/")}
        response = deployment.client.post("/api/credentials", json={"name": "pg_local", "type": "postgres",
                                                                      "data": data})
        assert response.status_code in (200, 201), response.text
        for path in sorted(EXAMPLES.glob("*.yaml")):
            deployment.register(path.read_text())
        yield deployment
    finally:
        deployment.close()


def guide_query(cluster: Cluster, sql: str, schema: str, fmt: str) -> subprocess.CompletedProcess[str]:
    host, port = "127.0.0.1", str(cluster.port)
    return subprocess.run([sys.executable, "-m", "noetl.cli.main", "--host", host, "--port", port, "query", sql,
                           "--schema", schema, "--format", fmt], capture_output=True, text=True, timeout=90,
                          env={**cluster.env, "NOETL_DATABASE_URL": ""})


def test_guide_003_validation_queries_run_as_printed(cluster: Cluster) -> None:
    with running_services(ServiceSettings(latency_ms=5)) as services:
        execution_id = cluster.execute("examples/traveler_batch/traveler_batch_enrichment_in_step", {
            "profile_api_url": f"{services.url}/anything/traveler-profile", "seed_rows": 200, "batch_size": 50,
            "max_batches": 4})
        doc = cluster.wait(execution_id, timeout=180)
    assert doc["status"] == "completed", doc["error"]

    counts = guide_query(cluster, f"""SELECT
     COUNT(*) AS stored_rows,
     COUNT(*) FILTER (WHERE profile_status = 200) AS successful_http_calls,
     COUNT(*) FILTER (WHERE is_valid = TRUE) AS valid_rows,
     COUNT(*) FILTER (WHERE is_valid = FALSE) AS invalid_rows,
     COUNT(DISTINCT batch_number) AS batches_with_rows,
     MAX(batch_number) AS max_batch_number
   FROM public.traveler_batch_results
   WHERE execution_id = '{execution_id}';""", "public", "json")
    assert counts.returncode == 0, counts.stderr
    assert json.loads(counts.stdout) == [{"stored_rows": 200, "successful_http_calls": 200, "valid_rows": 200,
                                          "invalid_rows": 0, "batches_with_rows": 4, "max_batch_number": 4}]
    table = guide_query(cluster, f"""SELECT COUNT(*) AS missing_rows
   FROM public.traveler_batch_source src
   LEFT JOIN public.traveler_batch_results tgt
     ON src.execution_id = tgt.execution_id
    AND src.traveler_id = tgt.traveler_id
   WHERE src.execution_id = '{execution_id}'
     AND src.traveler_id <= LEAST(200, 50 * 4)
     AND tgt.traveler_id IS NULL;""", "public", "table")
    assert table.returncode == 0, table.stderr
    assert "missing_rows" in table.stdout and " 0 " in table.stdout.replace("│", " ")

    enters = guide_query(cluster, f"""SELECT COUNT(*) AS validate_step_enters
   FROM noetl.event
   WHERE execution_id = {execution_id}
     AND event_type = 'step.enter'
     AND node_name = 'validate_persisted_results';""", "noetl", "json")
    assert enters.returncode == 0, enters.stderr
    assert json.loads(enters.stdout) == [{"validate_step_enters": 1}]

    summary = guide_query(cluster, f"""SELECT result
   FROM noetl.event
   WHERE execution_id = {execution_id}
     AND node_name = 'summarize'
     AND event_type = 'step.exit'
   ORDER BY event_id DESC
   LIMIT 1;""", "noetl", "json")
    assert summary.returncode == 0, summary.stderr
    result = json.loads(summary.stdout)[0]["result"]
    result = json.loads(result) if isinstance(result, str) else result
    assert result["status"] == "completed"
    assert result["execution"]["batch_worker_iterations"] == 4
    assert result["data"]["expected_rows"] == result["data"]["stored_rows"] == 200
    assert result["data"]["missing_rows"] == 0

    tail = guide_query(cluster, f"""SELECT event_id, event_type, node_name, status, created_at
   FROM noetl.event
   WHERE execution_id = {execution_id}
   ORDER BY event_id DESC
   LIMIT 40;""", "noetl", "table")
    assert tail.returncode == 0, tail.stderr
    assert "step.exit" in tail.stdout

    # Another role's table in public stays out of reach of the endpoint.
    other = guide_query(cluster, "SELECT * FROM public.other_app_users", "public", "json")
    assert other.returncode != 0 and "permission denied" in other.stderr

    # Reading the user's tables does not make them writable through the endpoint.
    refused = guide_query(cluster, f"DELETE FROM public.traveler_batch_results WHERE execution_id = '{execution_id}'",
                          "public", "table")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert cluster.sql("SELECT count(*) FROM public.traveler_batch_results WHERE execution_id = %s",
                       execution_id) == [(200,)]
    owners = cluster.sql("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'noetl'")
    assert owners == [(urlsplit(cluster.database_url).username,)]


def test_server_that_cannot_migrate_says_why_in_one_line(pg_cluster: dict[str, Any], tmp_path: Path) -> None:
    url = create_database(pg_cluster)
    with psycopg.connect(superuser_url(pg_cluster, url), autocommit=True) as admin:
        admin.execute("CREATE SCHEMA noetl")  # someone else's schema: the server's role may not create tables in it
    env = {**os.environ, "NOETL_DATABASE_URL": url, "NOETL_HOME": str(tmp_path)}
    started = subprocess.run([sys.executable, "-m", "noetl.cli.main", "server", "start", "--port", str(free_port())],
                             capture_output=True, text=True, timeout=120, env=env)
    assert started.returncode == 1
    assert "Traceback" not in started.stderr
    assert started.stderr.strip().splitlines()[-1] == (
        "error: migrating the database failed: permission denied for schema noetl")
