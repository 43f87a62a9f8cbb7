"""Acceptance: every example under examples/ runs end to end through the `noetl` command, against
the suite's throwaway PostgreSQL and the stand-in services, and passes its guide's validation queries.

The credential comes from the file the examples ship (examples/credentials/pg_local.yaml) with the
test cluster's address, registered through the CLI as a user would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from noetl.demo.services import DemoServices, ServiceSettings, running_services

from .conftest import CliResult, run_noetl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WEATHER_KEY = "weather-key-5f3e9a1c"  # distinctive, so a leak into stored events is unmistakable


# fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, pg_cluster: dict[str, Any]) -> Path:
    """A NOETL_HOME with credential pg_local registered from the shipped file, pointed at the test cluster."""
    home = tmp_path_factory.mktemp("examples-home")
    credential = yaml.safe_load((EXAMPLES / "credentials" / "pg_local.yaml").read_text())
    credential["data"].update({key: pg_cluster[key] for key in ("host", "port", "user", "password", "database")})
    credential_file = tmp_path_factory.mktemp("examples-credential") / "pg_local.yaml"
    credential_file.write_text(yaml.safe_dump(credential))
    registered = run_noetl("register", "credential", "-f", str(credential_file), home=home)
    assert registered.code == 0, registered.stderr
    return home


@pytest.fixture(scope="module")
def services() -> Iterator[DemoServices]:
    # A little latency, so the parallel loops really overlap their calls.
    with running_services(ServiceSettings(latency_ms=10)) as server:
        yield server


@pytest.fixture
def pg(pg_cluster: dict[str, Any]) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(pg_cluster["url"], row_factory=dict_row, autocommit=True) as connection:
        yield connection


def noetl(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
    return run_noetl(*args, home=home, env=env, timeout=timeout)


def run_example(home: Path, example: str, *args: str, env: dict[str, str] | None = None,
                timeout: float = 120) -> dict[str, Any]:
    """`noetl run examples/<example> --json ...`; the execution must complete."""
    result = noetl(home, "run", str(EXAMPLES / example), "--json", *args, env=env, timeout=timeout)
    assert result.stdout, result.stderr
    doc = result.json()
    assert (result.code, doc["status"]) == (0, "completed"), (doc["error"], result.stderr[-2000:])
    return doc


def events(home: Path, execution_id: str) -> list[dict[str, Any]]:
    result = noetl(home, "events", execution_id, "--json")
    assert result.code == 0, result.stderr
    return list(result.json())


# seed 000: multi-playbook orchestration (v1 syntax) ----------------------------------------------


MULTI_PLAYBOOK_VALIDATION = """
SELECT
  execution_id,
  timestamp,
  secrets_result->>'secret_retrieved' as secret_status,
  weather_result->>'london_temperature' as temperature,
  load_dict_result->>'files_processed' as files_count
FROM playbook_results
ORDER BY timestamp DESC;
"""

MULTI_PLAYBOOK_HISTORY = """
SELECT COUNT(*) as total_executions,
       MIN(timestamp) as first_execution,
       MAX(timestamp) as last_execution
FROM playbook_results;
"""


@pytest.fixture(scope="module")
def keyed_services() -> Iterator[DemoServices]:
    """The weather API insists on the key the secrets child retrieves."""
    with running_services(ServiceSettings(api_key=WEATHER_KEY)) as server:
        yield server


def multi_playbook_args(keyed_services: DemoServices, tmp_path: Path) -> list[str]:
    return ["--set", f"base_url={keyed_services.url}/v1", "--set", f"baseFilePath={tmp_path / 'files'}"]


def test_multi_playbook_stores_the_children_results_and_uses_the_secret_without_storing_it(
        home: Path, keyed_services: DemoServices, pg: psycopg.Connection[dict[str, Any]], tmp_path: Path) -> None:
    keyed_services.reset_stats()
    doc = run_example(home, "multi_playbook/multi_playbook_example.yaml",
                      *multi_playbook_args(keyed_services, tmp_path), env={"DEMO_WEATHER_API_KEY": WEATHER_KEY})
    execution_id = doc["execution_id"]
    summary = doc["result"]["execution_summary"]
    assert summary["secret_retrieved"] is True and summary["files_processed"] == 3
    assert summary["stored_in_postgres"] == 1

    rows = [r for r in pg.execute(MULTI_PLAYBOOK_VALIDATION).fetchall() if r["execution_id"] == execution_id]
    assert len(rows) == 1
    assert rows[0]["secret_status"] == "true"
    assert rows[0]["temperature"] == str(summary["london_temperature"])
    assert rows[0]["files_count"] == "3"
    assert pg.execute(MULTI_PLAYBOOK_HISTORY).fetchone()["total_executions"] >= 1  # type: ignore[index]

    # The same row in this execution's DuckDB database.
    database = home / "data" / "duckdb" / f"{execution_id}.duckdb"
    with duckdb.connect(str(database), read_only=True) as connection:
        stored = connection.execute(
            "SELECT secrets_result->>'secret_retrieved', load_dict_result->>'validation_status' "
            "FROM playbook_results WHERE execution_id = ?", [execution_id]).fetchall()
    assert stored == [("true", "passed")]

    # The load child wrote three files (in a folder named after its execution) and loaded the
    # reading into PostgreSQL.
    paths = [Path(p) for p in doc["result"]["playbook_results"]["load_dict_result"]["storage_paths"]]
    assert [p.suffix for p in paths if p.exists()] == [".json", ".csv", ".parquet"]
    loaded = pg.execute("SELECT city, temperature FROM weather_readings WHERE execution_id = %s",
                        [paths[0].parent.name]).fetchall()
    assert [(r["city"], float(r["temperature"])) for r in loaded] == [("London", summary["london_temperature"])]

    # The weather child sent the key the secrets child retrieved, and no stored document holds it.
    forecasts = [r for r in keyed_services.requests if r["path"] == "/v1/forecast"]
    assert [(r["status"], r["headers"].get("X-API-Key")) for r in forecasts] == [(200, WEATHER_KEY)]

    # Every execution of the family, the parent and its three children, and their status documents.
    children = noetl(home, "query", "SELECT execution_id, path FROM noetl.execution "
                     f"WHERE parent_execution_id = '{doc['execution_id']}' ORDER BY execution_id", "--format", "json")
    assert [c["path"] for c in children.json()] == [
        "workflows/examples/secrets_test", "workflows/examples/weather_example", "workflows/data/load_dict_test"]
    family = [doc["execution_id"], *(c["execution_id"] for c in children.json())]
    stored = [json.dumps(events(home, execution_id)) + noetl(home, "status", execution_id, "--json").stdout
              for execution_id in family]
    assert WEATHER_KEY not in "".join(stored)

    # Without the key the weather API refuses, and the failure names the child execution.
    failed = noetl(home, "run", str(EXAMPLES / "multi_playbook/multi_playbook_example.yaml"), "--json",
                   *multi_playbook_args(keyed_services, tmp_path), env={"DEMO_WEATHER_API_KEY": "wrong-key-0000"})
    assert failed.code == 1
    error = json.dumps(failed.json()["error"])
    assert "run_weather_example" in error and "execution" in error and "401" in error


def test_multi_playbook_as_the_guide_runs_it_registered(
        home: Path, keyed_services: DemoServices, tmp_path: Path) -> None:
    for name in ("secrets_test", "weather_example", "load_dict_test", "multi_playbook_example"):
        registered = noetl(home, "playbooks", "--register", str(EXAMPLES / "multi_playbook" / f"{name}.yaml"))
        assert registered.code == 0, registered.stderr
    payload = {"ENVIRONMENT": "dev", "base_url": f"{keyed_services.url}/v1",
               "baseFilePath": str(tmp_path / "files")}
    result = noetl(home, "playbooks", "--execute", "--path", "workflows/examples/multi_playbook_example",
                   "--payload", json.dumps(payload), env={"DEMO_WEATHER_API_KEY": WEATHER_KEY})
    assert result.code == 0, result.stderr[-2000:]
    assert "completed" in result.stdout


# seed 001: batch of child playbooks, aggregated into PostgreSQL through DuckDB -------------------


BATCH_VALIDATION = """
SELECT
    id,
    execution_id,
    http_result::jsonb->>'status' as http_status,
    weather_result::jsonb->>'status' as weather_status,
    data_result::jsonb->>'status' as data_status,
    timestamp
FROM playbook_batch_results
ORDER BY timestamp DESC
LIMIT 10;
"""

BATCH_ERRORS = """
SELECT
    execution_id,
    timestamp,
    CASE
        WHEN http_result::jsonb->>'status' != 'success' THEN 'HTTP Error'
        WHEN weather_result::jsonb->>'status' != 'success' THEN 'Weather Error'
        WHEN data_result::jsonb->>'status' != 'success' THEN 'Data Error'
        ELSE 'All Success'
    END as error_status
FROM playbook_batch_results
ORDER BY timestamp DESC;
"""


def batch_args(services: DemoServices, tmp_path: Path) -> list[str]:
    return ["--set", f"services_url={services.url}", "--set", f"base_url={services.url}/v1",
            "--set", f"baseFilePath={tmp_path / 'files'}"]


def test_batch_execution_aggregates_three_children_into_postgres(
        home: Path, services: DemoServices, pg: psycopg.Connection[dict[str, Any]], tmp_path: Path) -> None:
    doc = run_example(home, "batch_execution/multi_playbook_batch.yaml", *batch_args(services, tmp_path))
    execution_id = doc["execution_id"]
    assert doc["result"] == {"status": "completed"}
    stored = doc["steps"]["store_results"]["result"]
    assert stored["status"] == "success" and stored["message"] == "Batch results stored successfully"
    assert stored["execution_id"] == execution_id and stored["stored_in_postgres"] == 1

    rows = [r for r in pg.execute(BATCH_VALIDATION).fetchall() if r["execution_id"] == execution_id]
    assert [(r["http_status"], r["weather_status"], r["data_status"]) for r in rows] == [
        ("success", "success", "success")]
    errors = {r["execution_id"]: r["error_status"] for r in pg.execute(BATCH_ERRORS).fetchall()}
    assert errors[execution_id] == "All Success"
    weather = json.loads(pg.execute("SELECT weather_result FROM playbook_batch_results WHERE execution_id = %s",
                                    [execution_id]).fetchone()["weather_result"])  # type: ignore[index]
    assert weather["classification"] == "normal" and "London" in weather["temperatures"]
    http_rows = pg.execute("SELECT status_code FROM http_get_results").fetchall()
    assert {"status_code": 200} in http_rows


def test_batch_execution_with_the_guides_commands(home: Path, services: DemoServices, tmp_path: Path) -> None:
    for name in ("http_to_postgres_simple", "control_flow_workbook", "duckdb_transform", "multi_playbook_batch"):
        registered = noetl(home, "catalog", "register", str(EXAMPLES / "batch_execution" / f"{name}.yaml"))
        assert registered.code == 0, registered.stderr
    executed = noetl(home, "execute", "playbook", "batch_execution/multi_playbook_batch", "--json",
                     "--payload", json.dumps({"services_url": services.url, "base_url": f"{services.url}/v1",
                                              "baseFilePath": str(tmp_path / "files")}))
    assert executed.code == 0, executed.stderr[-2000:]
    execution_id = executed.json()["execution_id"]
    status = noetl(home, "execute", "status", execution_id, "--json").json()
    assert status["status"] == "completed"
    assert status["completed_steps"] == ["start", "run_http_test", "run_weather_processing",
                                         "run_data_transformation", "store_results", "check_stored", "end"]
    direct = noetl(home, "exec", "batch_execution/multi_playbook_batch", "--set", f"services_url={services.url}",
                   "--set", f"base_url={services.url}/v1", "--set", f"baseFilePath={tmp_path / 'files'}")
    assert direct.code == 0, direct.stderr[-2000:]


# seed 002: pagination, case-era and canonical ------------------------------------------------------


def item_ids(result: Any) -> list[int]:
    items = result if isinstance(result, list) else result["items"]
    return [item["id"] for item in items]


def test_case_era_pagination_collects_every_page(home: Path, services: DemoServices) -> None:
    services.reset_stats()
    doc = run_example(home, "pagination/pagination_case.yaml", "--set", f"api_url={services.url}")
    assert item_ids(doc["result"]) == list(range(1, 36))
    pages = [r["query"]["page"] for r in services.requests if r["path"] == "/paginated"]
    assert pages == ["1", "2", "3", "4"]
    enters = [e for e in events(home, doc["execution_id"]) if e["event_type"] == "step.enter"]
    assert [e["node_name"] for e in enters] == ["start"]  # the re-runs stay inside one step entry


def test_canonical_pagination_gives_the_same_items(home: Path, services: DemoServices) -> None:
    doc = run_example(home, "pagination/pagination_canonical.yaml", "--set", f"api_url={services.url}")
    assert item_ids(doc["result"]) == list(range(1, 36)) and doc["result"]["pages"] == 4
    smaller = run_example(home, "pagination/pagination_canonical.yaml", "--set", f"api_url={services.url}",
                          "--set", "page_size=5")
    assert item_ids(smaller["result"]) == list(range(1, 36)) and smaller["result"]["pages"] == 7


def test_migrated_case_era_pagination_behaves_the_same(home: Path, services: DemoServices, tmp_path: Path) -> None:
    migrated = noetl(home, "migrate", str(EXAMPLES / "pagination" / "pagination_case.yaml"))
    assert migrated.code == 0, migrated.stderr
    (tmp_path / "migrated.yaml").write_text(migrated.stdout)
    result = noetl(home, "run", str(tmp_path / "migrated.yaml"), "--json", "--set", f"api_url={services.url}")
    assert result.code == 0, result.stderr
    assert item_ids(result.json()["result"]) == list(range(1, 36))


def test_canonical_pagination_retries_a_flaky_api(home: Path) -> None:
    # Seed 2 at a 50% failure rate fails page 3 once and page 4 three times (the draws are seeded).
    with running_services(ServiceSettings(failure_rate=0.5, seed=2)) as flaky:
        doc = run_example(home, "pagination/pagination_canonical.yaml", "--set", f"api_url={flaky.url}")
        statuses = [r["status"] for r in flaky.requests]
    assert item_ids(doc["result"]) == list(range(1, 36))
    assert statuses.count(503) == 4 and statuses.count(200) == 4


# seed 003: traveler batch enrichment -------------------------------------------------------------


PERSISTED_COUNTS = """
SELECT
  COUNT(*) AS stored_rows,
  COUNT(*) FILTER (WHERE profile_status = 200) AS successful_http_calls,
  COUNT(*) FILTER (WHERE is_valid = TRUE) AS valid_rows,
  COUNT(*) FILTER (WHERE is_valid = FALSE) AS invalid_rows,
  COUNT(DISTINCT batch_number) AS batches_with_rows,
  MAX(batch_number) AS max_batch_number
FROM public.traveler_batch_results
WHERE execution_id = %(execution_id)s;
"""

MISSING_ROWS = """
SELECT COUNT(*) AS missing_rows
FROM public.traveler_batch_source src
LEFT JOIN public.traveler_batch_results tgt
  ON src.execution_id = tgt.execution_id
 AND src.traveler_id = tgt.traveler_id
WHERE src.execution_id = %(execution_id)s
  AND src.traveler_id <= LEAST(%(seed_rows)s, %(batch_size)s * %(max_batches)s)
  AND tgt.traveler_id IS NULL;
"""

VALIDATE_STEP_ENTERS = """
SELECT COUNT(*) AS validate_step_enters
FROM noetl.event
WHERE execution_id = {execution_id}
  AND event_type = 'step.enter'
  AND node_name = 'validate_persisted_results';
"""


def run_traveler_batch(home: Path, services: DemoServices, pg: psycopg.Connection[dict[str, Any]],
                       seed_rows: int, batch_size: int, max_batches: int, *overrides: str) -> dict[str, Any]:
    """Run the parent, then check everything the guide's validation section checks."""
    services.reset_stats()
    doc = run_example(home, "traveler_batch/traveler_batch_enrichment_in_step.yaml",
                      "--set", f"profile_api_url={services.url}/anything/traveler-profile", *overrides)
    execution_id = doc["execution_id"]
    expected = min(seed_rows, batch_size * max_batches)

    counts = pg.execute(PERSISTED_COUNTS, {"execution_id": execution_id}).fetchone()
    assert counts == {"stored_rows": expected, "successful_http_calls": expected, "valid_rows": expected,
                      "invalid_rows": 0, "batches_with_rows": max_batches, "max_batch_number": max_batches}
    missing = pg.execute(MISSING_ROWS, {"execution_id": execution_id, "seed_rows": seed_rows,
                                        "batch_size": batch_size, "max_batches": max_batches}).fetchone()
    assert missing == {"missing_rows": 0}

    # The parent moved on after loop.done exactly once: from the event log (`noetl events --json`)
    # and with the guide's own query against the local store.
    enters = [e for e in events(home, execution_id)
              if e["event_type"] == "step.enter" and e["node_name"] == "validate_persisted_results"]
    assert len(enters) == 1
    query = noetl(home, "query", VALIDATE_STEP_ENTERS.format(execution_id=execution_id), "--format", "json")
    assert query.json() == [{"validate_step_enters": 1}]

    summary = doc["result"]
    assert summary["status"] == "completed"
    assert summary["execution"] == {"batch_worker_iterations": max_batches, "batch_worker_failed_iterations": 0,
                                    "rows_processed_by_workers": expected}
    assert summary["data"]["expected_rows"] == summary["data"]["stored_rows"] == expected
    assert summary["data"]["missing_rows"] == 0

    # The worker's parallel loop really ran in parallel, and never above its bound.
    assert 1 < services.peak_in_flight <= 25
    return doc


def test_traveler_batch_smoke(home: Path, services: DemoServices, pg: psycopg.Connection[dict[str, Any]]) -> None:
    run_traveler_batch(home, services, pg, 200, 50, 4,
                       "--set", "seed_rows=200", "--set", "batch_size=50", "--set", "max_batches=4")


@pytest.mark.slow
def test_traveler_batch_defaults(home: Path, services: DemoServices, pg: psycopg.Connection[dict[str, Any]]) -> None:
    doc = run_traveler_batch(home, services, pg, 2000, 100, 20)
    assert doc["steps"]["run_batch_workers"]["result"]["stats"] == {"total": 20, "success": 20, "failed": 0}


def test_traveler_batch_survives_a_flaky_profile_api(home: Path, pg: psycopg.Connection[dict[str, Any]]) -> None:
    # 10% of the profile calls fail at first; the worker's retry policy recovers every one.
    with running_services(ServiceSettings(failure_rate=0.1, seed=5, latency_ms=5)) as flaky:
        run_traveler_batch(home, flaky, pg, 200, 50, 4,
                           "--set", "seed_rows=200", "--set", "batch_size=50", "--set", "max_batches=4")
        assert any(r["status"] == 503 for r in flaky.requests)
