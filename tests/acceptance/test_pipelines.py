"""Pipelines, the output envelope, workbook defaults, credential aliases and python libs/scripts,
through the `noetl` command against the demo services and the local HTTP test server.

Each `tests/fixtures/playbooks/pipelines/NAME.yaml` with a `NAME.expect.json` beside it runs like a
conformance case; its stored status document must equal the fold of its stored event log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noetl.demo.services import DemoServices, running_services
from noetl.engine.events import Event
from noetl.engine.status import status_document

from .conftest import FIXTURES, CliResult
from .test_conformance import check_outcome
from .test_data_tools import register_pg

PIPELINES = FIXTURES / "pipelines"
CASES = sorted(p.name.removesuffix(".expect.json") for p in PIPELINES.glob("*.expect.json"))


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServices]:
    with running_services() as services:
        yield services


def run_fixture(noetl, name: str, *args: str) -> CliResult:  # type: ignore[no-untyped-def]
    return noetl("run", str(PIPELINES / f"{name}.yaml"), "--json", *args)


def assert_status_is_the_fold_of_the_log(noetl, doc: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    stored = noetl("status", doc["execution_id"], "--json").json()
    events = noetl("events", doc["execution_id"], "--json").json()
    assert stored == doc
    assert status_document([Event.from_dict(e) for e in events]) == doc


@pytest.mark.parametrize("case", CASES)
def test_pipeline_fixture(case: str, noetl, http_server, demo: DemoServices) -> None:  # type: ignore[no-untyped-def]
    expect = json.loads((PIPELINES / f"{case}.expect.json").read_text())
    result = run_fixture(noetl, case, "--set", f"api={http_server.url}", "--set", f"demo={demo.url}")
    assert result.stdout, result.stderr
    doc = result.json()
    check_outcome(doc, result.code, expect)
    assert_status_is_the_fold_of_the_log(noetl, doc)


def test_fixed_backoff_waits_a_constant_delay_between_attempts(noetl, http_server) -> None:  # type: ignore[no-untyped-def]
    doc = run_fixture(noetl, "retry_fixed_backoff", "--set", f"api={http_server.url}").json()
    calls = [r for r in http_server.requests if r["path"] == f"/flaky/{doc['execution_id']}"]
    assert len(calls) == 3  # two 503 answers retried, then the 200
    events = noetl("events", doc["execution_id"], "--json").json()
    done = next(e for e in events if e["event_type"] == "call.done")
    assert done["meta"]["attempt"] == 4  # three runs of `call` and one of `done`


def test_task_results_are_in_the_log_and_not_in_the_step_result(noetl, demo: DemoServices) -> None:  # type: ignore[no-untyped-def]
    doc = run_fixture(noetl, "pagination_task_set", "--set", f"demo={demo.url}").json()
    assert set(doc["steps"]["start"]["result"]) == {"count", "first", "last", "pages", "status"}
    events = noetl("events", doc["execution_id"], "--json").json()
    done = next(e for e in events if e["event_type"] == "call.done" and e["node_name"] == "start")
    assert done["meta"]["tasks"]["fetch"]["data"]["page"] == 4
    assert done["meta"]["result_task"] == "summary"  # the step's own result is not stored twice
    assert done["meta"]["names"] == {"last_page": 4, "last_status": 200}
    assert [r["query"]["page"] for r in demo.requests if r["path"] == "/paginated"][-4:] == ["1", "2", "3", "4"]


def test_credential_alias_on_http_postgres_and_duckdb(noetl, tmp_path: Path, http_server,  # type: ignore[no-untyped-def]
                                                      pg_cluster: dict[str, Any]) -> None:
    register_pg(noetl, tmp_path, pg_cluster)
    bearer = tmp_path / "api_bearer.json"
    bearer.write_text(json.dumps({"name": "api_bearer", "type": "bearer", "data": {"token": http_server.bearer_token}}))
    assert noetl("register", "credential", "-f", str(bearer)).code == 0
    assert noetl("validate", str(PIPELINES / "credential_alias.yaml")).stdout.count("unknown key") == 0
    result = run_fixture(noetl, "credential_alias", "--set", f"api={http_server.url}")
    doc = result.json()
    assert result.code == 0, doc["error"]
    assert doc["steps"]["query"]["result"]["rows"] == [{"scheme": "bearer", "answer": 42}]
    assert doc["steps"]["attach"]["result"]["rows"] == [{"tables": 1}]
    assert http_server.bearer_token not in noetl("events", doc["execution_id"], "--json").stdout


def test_task_set_and_credential_are_known_keys(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = noetl("validate", str(PIPELINES / "pagination_task_set.yaml"), str(PIPELINES / "retry_fixed_backoff.yaml"))
    assert result.code == 0, result.stdout + result.stderr
    assert "unknown key" not in result.stdout + result.stderr


def test_templates_in_python_code_are_warned_about_and_migrated_to_input(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    legacy = PIPELINES / "code_templates_legacy.yaml"
    checked = noetl("validate", str(legacy))
    assert checked.code == 0
    assert "code_templates_legacy.yaml:10:5: warning: step 'start': python code is never rendered, so {{ temp }}" \
        in checked.stderr
    assert "step 'shout': python code is never rendered, so {{ city }}" in checked.stderr
    assert "not_a_context_name" not in checked.stderr  # only names the render context has

    migrated = noetl("migrate", str(legacy))
    assert migrated.code == 0, migrated.stderr
    canonical = tmp_path / "migrated.yaml"
    canonical.write_text(migrated.stdout)
    assert "never rendered" not in noetl("validate", str(canonical)).stderr
    result = noetl("run", str(canonical), "--json")
    doc = result.json()
    assert result.code == 0, doc["error"]
    # What rendering the code first produced: native values outside strings, text inside them.
    assert doc["steps"]["start"]["result"] == {"t": 31, "name": "London", "greeting": "Hello O'Brien, it is 30 C",
                                               "n": 2, "kept": "{{ not_a_context_name }}"}
    assert doc["steps"]["shout"]["result"] == "LONDON/Hello O'Brien, it is 30 C"


MAX_IN_FLIGHT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: width}
workload: {width: WIDTH}
workflow:
  - step: start
    loop: {in: [1, 2, 3], iterator: n, spec: {mode: parallel, max_in_flight: SPEC}}
    tool: {kind: noop}
"""


def test_a_templated_max_in_flight_that_is_not_a_positive_integer_fails_the_step(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = tmp_path / "width.yaml"
    playbook.write_text(MAX_IN_FLIGHT.replace("WIDTH", "wide").replace("SPEC", '"{{ width }}"'))
    result = noetl("run", str(playbook), "--json")
    assert result.code == 1
    assert "loop.spec.max_in_flight: expected a positive integer, got 'wide'" in result.json()["error"]
    assert noetl("run", str(playbook), "--json", "--set", "width=2").json()["status"] == "completed"


def test_a_literal_max_in_flight_below_one_is_invalid(noetl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = tmp_path / "width.yaml"
    playbook.write_text(MAX_IN_FLIGHT.replace("WIDTH", "1").replace("SPEC", "0"))
    result = noetl("validate", str(playbook))
    assert result.code == 2
    assert "max_in_flight must be at least 1" in result.stdout + result.stderr
